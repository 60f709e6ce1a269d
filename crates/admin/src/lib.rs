//! The admin API of ocspd: the JSON calls CA staff make through `ocspctl` (register issuers,
//! record issued certificates, revoke, look up a status), its bearer-token authentication, and
//! the client `ocspctl` uses.
//!
//! The API is served on its own listener, never on the public one. Every call is
//! authenticated; a refused call is logged with the peer address and changes nothing.

pub mod api;
mod auth;
mod client;
mod ports;
mod server;

pub use auth::{AdminAuth, Credential, Permission, Role, TokenFile};
pub use client::{AdminClient, ClientError};
pub use ports::{MemoryPort, PresignerPort, PurgerPort};
pub use server::{AdminError, AdminService, AdminState, MAX_BULK};
