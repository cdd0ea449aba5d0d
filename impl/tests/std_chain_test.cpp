// placeholder: filled in by the issue 16 work
