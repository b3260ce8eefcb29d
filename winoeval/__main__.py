from winoeval.cli import main

main()
