// pulumi-resource-kubernetes, built from the pinned pulumi-kubernetes module.
//
// Upstream's main embeds schema-embed.json and terraform-mapping-embed.json,
// which its `go generate` step writes from the module's schema.json. Nothing
// of theirs is committed here: build.sh copies this file into a staging copy
// of the module and writes the two files beside it from the module cache
// (stamping the schema's version), then builds.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
