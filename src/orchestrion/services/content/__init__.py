"""The content service: documents, analysis, chunks, search and WebAssembly plugins."""
