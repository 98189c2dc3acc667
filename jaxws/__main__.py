from jaxws.cli import main

main()
