from tcplab.cli import main

main()
