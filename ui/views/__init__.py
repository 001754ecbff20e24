"""The pages of the UI, one script each, run by `st.navigation` (see `ui.shell.PAGES`)."""
