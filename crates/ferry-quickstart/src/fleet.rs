//! The quickstart's devices: who they are, how they start, and what must happen to each.

/// One simulated device and the outcome it must end with.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// Device id (IMEI-like).
    pub id: &'static str,
    /// Device type (chooses which releases apply).
    pub device_type: &'static str,
    /// Main-program version installed at the factory.
    pub main_before: &'static str,
    /// Config schema in the device's data (1.1.0 needs 2).
    pub config_schema: u32,
    /// Whether the server blacklists this device for main 1.1.0.
    pub blacklisted: bool,
    /// Whether its downloads go through the link that drops.
    pub flaky_link: bool,
    /// Device group (sets the download segment size).
    pub group: &'static str,
    /// Expected main version after the run.
    pub main_after: &'static str,
    /// Expected agent version after the run.
    pub agent_after: &'static str,
    /// What the device demonstrates.
    pub story: &'static str,
}

/// Agent version installed at the factory on every device.
pub const AGENT_BEFORE: &str = "1.0.0";
/// The newest main-program release.
pub const MAIN_NEW: &str = "1.1.0";
/// The newest agent release (for device type `gateway-v2` only).
pub const AGENT_NEW: &str = "1.1.0";

/// Segment size of each device group (the server's default is [`DEFAULT_CHUNK`]).
pub const GROUPS: &[(&str, u32)] = &[("narrowband", 2048), ("broadband", 1 << 20)];
/// The server's default segment size in the quickstart.
pub const DEFAULT_CHUNK: u32 = 32 * 1024;

/// The fleet the quickstart runs.
pub fn fleet() -> Vec<DeviceSpec> {
    vec![
        DeviceSpec {
            id: "356938035643801",
            device_type: "gateway",
            main_before: "1.0.0",
            config_schema: 2,
            blacklisted: false,
            flaky_link: true,
            group: "narrowband",
            main_after: MAIN_NEW,
            agent_after: AGENT_BEFORE,
            story: "link drops mid-download, resumes from the bytes it had",
        },
        DeviceSpec {
            id: "356938035643802",
            device_type: "gateway",
            main_before: MAIN_NEW,
            config_schema: 2,
            blacklisted: false,
            flaky_link: false,
            group: "default",
            main_after: MAIN_NEW,
            agent_after: AGENT_BEFORE,
            story: "already up to date",
        },
        DeviceSpec {
            id: "356938035643803",
            device_type: "gateway",
            main_before: "1.0.0",
            config_schema: 2,
            blacklisted: true,
            flaky_link: false,
            group: "default",
            main_after: "1.0.0",
            agent_after: AGENT_BEFORE,
            story: "blacklisted for 1.1.0, told nothing new",
        },
        DeviceSpec {
            id: "356938035643804",
            device_type: "gateway",
            main_before: "1.0.0",
            config_schema: 1,
            blacklisted: false,
            flaky_link: false,
            group: "default",
            main_after: "1.0.0",
            agent_after: AGENT_BEFORE,
            story: "1.1.0 fails its health check (legacy config), rolls back",
        },
        DeviceSpec {
            id: "356938035643805",
            device_type: "gateway-v2",
            main_before: MAIN_NEW,
            config_schema: 2,
            blacklisted: false,
            flaky_link: false,
            group: "broadband",
            main_after: MAIN_NEW,
            agent_after: AGENT_NEW,
            story: "agent updates itself; main program keeps running",
        },
        DeviceSpec {
            id: "356938035643806",
            device_type: "gateway",
            main_before: "1.0.0",
            config_schema: 2,
            blacklisted: false,
            flaky_link: false,
            group: "default",
            main_after: MAIN_NEW,
            agent_after: AGENT_BEFORE,
            story: "plain update",
        },
    ]
}
