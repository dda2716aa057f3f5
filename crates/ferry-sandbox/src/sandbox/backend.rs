//! The choice of sandbox backend for a rehearsed service, and where its service is reached.

use super::{NamespaceSandbox, QemuSandbox, Sandbox, SandboxChild, SandboxError, SandboxSpec};
use crate::mirror::Backend;
use std::net::SocketAddr;

/// Which backend a service rehearses in.
#[derive(Debug, Clone, Default)]
pub enum SandboxBackend {
    /// Linux namespaces + Landlock + seccomp + cgroups ([`NamespaceSandbox`]).
    #[default]
    Namespace,
    /// A QEMU guest with a kernel of its own ([`QemuSandbox`]); the service's port is added
    /// to its forwards.
    Qemu(QemuSandbox),
}

impl SandboxBackend {
    /// Backend name.
    pub fn name(&self) -> &'static str {
        match self {
            SandboxBackend::Namespace => NamespaceSandbox.name(),
            SandboxBackend::Qemu(q) => q.name(),
        }
    }

    /// Starts `spec` as a service listening on `listen` inside the sandbox, and returns the
    /// sandbox with the address the proxy reaches the service at
    /// ([`SandboxChild::service_backend`]).
    pub fn start_service(
        &self,
        spec: &SandboxSpec,
        listen: SocketAddr,
    ) -> Result<(SandboxChild, Backend), SandboxError> {
        let child = match self {
            SandboxBackend::Namespace => NamespaceSandbox.start(spec)?,
            SandboxBackend::Qemu(q) => {
                let mut q = q.clone();
                if !q.forward_ports.contains(&listen.port()) {
                    q.forward_ports.push(listen.port());
                }
                q.start(spec)?
            }
        };
        let backend = child.service_backend(listen)?;
        Ok((child, backend))
    }
}
