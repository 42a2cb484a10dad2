from meshop.cli.entry import main

main()
