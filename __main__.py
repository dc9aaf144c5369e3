"""Entry point Pulumi runs for this component package (PulumiPlugin.yaml: runtime python)."""

from infra_inference.provider import main

if __name__ == "__main__":
    main()
