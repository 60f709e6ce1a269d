//! The library half of `ocspctl`: reading staff's input files (serial lists, CSV, OpenSSL
//! `index.txt`, folders of certificates) into typed entries, checked line by line. It sends
//! nothing; the binary (feature `cli`, on by default) talks to ocspd's admin API.
//!
//! Kept apart so that the fuzz targets reach the parsers without the admin client and the
//! database behind it.

pub mod input;
