import CCLCommands

CCLCommand.main()
