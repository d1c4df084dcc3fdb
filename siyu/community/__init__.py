"""Community (社群): groups and their members, the resources library, check-in challenges and posts,
lottery draws and the KOC program."""
