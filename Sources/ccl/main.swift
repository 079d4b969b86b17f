import CCLCommands

CCLCommand.runMain()
