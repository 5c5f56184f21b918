"""The content service: documents, their text, analysis, chunks and search."""
