from learnerprobe.cli import main

main()
