"""The dashboard's modal screens: confirmation, order detail, filter and help."""
