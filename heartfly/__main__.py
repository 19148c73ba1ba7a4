from heartfly.cli import main

main()
