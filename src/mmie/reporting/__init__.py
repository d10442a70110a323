"""Paper tables from run folders: Markdown/LaTeX/CSV with significance daggers (``report``) and plots."""
