from pointsmith.cli import main

main()
