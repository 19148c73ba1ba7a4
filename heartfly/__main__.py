from heartfly.entry import main

main()
