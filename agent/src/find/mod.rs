//! s3find: scan a mounted bucket filesystem into sorted key-list chunks.
