from infra_inference.cli import main

main()
