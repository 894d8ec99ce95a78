"""`embedserve embed`: whole files embedded through an in-process Engine, chunk by chunk, resumable."""
