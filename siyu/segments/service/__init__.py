"""The rules of the segments area: saved segments and their versions (`crud`), previews
(`preview`), members and exports (`members`), tracked membership (`tracking`) and static lists
(`static`)."""
