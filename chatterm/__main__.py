from chatterm.cli.app import main

main()
