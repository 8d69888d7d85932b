"""Text: documents, chunking, markup, tidying, languages and prompts."""
