"""The content service: documents, analysis, search and WebAssembly plugins."""
