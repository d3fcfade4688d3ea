from tcplab.entry import main

main()
