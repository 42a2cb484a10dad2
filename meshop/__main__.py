from meshop.cli.main import main

main()
