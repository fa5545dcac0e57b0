from reflex.cli.app import main

main()
