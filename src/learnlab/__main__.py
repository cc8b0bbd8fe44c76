from learnlab.cli import main

main()
