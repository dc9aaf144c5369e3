module infra-inference.dev/tools/controlplane/pause

go 1.26
