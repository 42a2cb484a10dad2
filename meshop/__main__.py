from meshop.cli.fast import main

main()
