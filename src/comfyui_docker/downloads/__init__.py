"""Downloads: the fetch engine, the journal, volume locks, the installer and the PresetService."""
