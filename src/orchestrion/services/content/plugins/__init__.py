"""WebAssembly plugins (Extism): upload, list, delete and call them in a sandbox."""
