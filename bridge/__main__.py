"""`python -m bridge` is `zoho-bridge`."""

from bridge.cli import main

main(prog_name="zoho-bridge")
