//! The quickstart's devices: who they are, how they start, and what must happen to each.

use std::fmt;

/// How a device's update was shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The server's tree delta from the version the device ran.
    Delta,
    /// The full signed package.
    Full,
    /// Nothing was downloaded.
    Nothing,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::Delta => "delta",
            Delivery::Full => "full",
            Delivery::Nothing => "—",
        })
    }
}

/// What must happen to a device in the second round (after main [`MAIN_NEXT`] is uploaded).
#[derive(Debug, Clone, Copy)]
pub struct SecondRound {
    /// Expected main version after the second run.
    pub main_after: &'static str,
    /// How the second update must be shipped.
    pub delivery: Delivery,
}

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
    /// Whether a file of its installed main program is changed before the run ("rooted").
    pub rooted: bool,
    /// Device group (sets the download segment size).
    pub group: &'static str,
    /// Expected main version after the first run.
    pub main_after: &'static str,
    /// How the first run's update must be shipped (for a rooted device: what finally installed).
    pub delivery: Delivery,
    /// Expected agent version after the run.
    pub agent_after: &'static str,
    /// Whether (and how) the device runs again after main [`MAIN_NEXT`] is uploaded.
    pub second_round: Option<SecondRound>,
    /// What the device demonstrates.
    pub story: &'static str,
}

/// Agent version installed at the factory on every device.
pub const AGENT_BEFORE: &str = "1.0.0";
/// The main release most of the fleet was installed with at the factory (uploaded to the server).
pub const MAIN_BASE: &str = "1.0.0";
/// An older factory main version that was never uploaded: the server has no delta from it.
pub const MAIN_LEGACY: &str = "0.9.0";
/// The newest main-program release of the first round.
pub const MAIN_NEW: &str = "1.1.0";
/// The main-program release uploaded for the second round.
pub const MAIN_NEXT: &str = "1.2.0";
/// The newest agent release (for device type `gateway-v2` only).
pub const AGENT_NEW: &str = "1.1.0";
/// The file of the rooted device's installed main program that is changed before the run.
pub const TAMPERED_FILE: &str = "assets.bin";

/// Segment size of each device group (the server's default is [`DEFAULT_CHUNK`]).
pub const GROUPS: &[(&str, u32)] = &[("narrowband", 2048), ("broadband", 1 << 20)];
/// The server's default segment size in the quickstart.
pub const DEFAULT_CHUNK: u32 = 32 * 1024;

/// The fleet the quickstart runs.
pub fn fleet() -> Vec<DeviceSpec> {
    let next_as_delta = Some(SecondRound { main_after: MAIN_NEXT, delivery: Delivery::Delta });
    vec![
        DeviceSpec {
            id: "356938035643801",
            device_type: "gateway",
            main_before: MAIN_LEGACY,
            config_schema: 2,
            blacklisted: false,
            flaky_link: true,
            rooted: false,
            group: "narrowband",
            main_after: MAIN_NEW,
            delivery: Delivery::Full,
            agent_after: AGENT_BEFORE,
            second_round: next_as_delta,
            story: "on 0.9.0 (no delta base): full package over a link that drops mid-download",
        },
        DeviceSpec {
            id: "356938035643802",
            device_type: "gateway",
            main_before: MAIN_NEW,
            config_schema: 2,
            blacklisted: false,
            flaky_link: false,
            rooted: false,
            group: "default",
            main_after: MAIN_NEW,
            delivery: Delivery::Nothing,
            agent_after: AGENT_BEFORE,
            second_round: None,
            story: "already up to date",
        },
        DeviceSpec {
            id: "356938035643803",
            device_type: "gateway",
            main_before: MAIN_BASE,
            config_schema: 2,
            blacklisted: true,
            flaky_link: false,
            rooted: false,
            group: "default",
            main_after: MAIN_BASE,
            delivery: Delivery::Nothing,
            agent_after: AGENT_BEFORE,
            second_round: None,
            story: "blacklisted for 1.1.0, told nothing new",
        },
        DeviceSpec {
            id: "356938035643804",
            device_type: "gateway",
            main_before: MAIN_BASE,
            config_schema: 1,
            blacklisted: false,
            flaky_link: false,
            rooted: false,
            group: "default",
            main_after: MAIN_BASE,
            delivery: Delivery::Delta,
            agent_after: AGENT_BEFORE,
            second_round: None,
            story: "1.1.0 fails its health check (legacy config), rolls back",
        },
        DeviceSpec {
            id: "356938035643805",
            device_type: "gateway-v2",
            main_before: MAIN_NEW,
            config_schema: 2,
            blacklisted: false,
            flaky_link: false,
            rooted: false,
            group: "broadband",
            main_after: MAIN_NEW,
            delivery: Delivery::Delta,
            agent_after: AGENT_NEW,
            second_round: None,
            story: "agent updates itself; main program keeps running",
        },
        DeviceSpec {
            id: "356938035643806",
            device_type: "gateway",
            main_before: MAIN_BASE,
            config_schema: 2,
            blacklisted: false,
            flaky_link: false,
            rooted: false,
            group: "default",
            main_after: MAIN_NEW,
            delivery: Delivery::Delta,
            agent_after: AGENT_BEFORE,
            second_round: next_as_delta,
            story: "plain update, shipped as a delta",
        },
        DeviceSpec {
            id: "356938035643807",
            device_type: "gateway",
            main_before: MAIN_BASE,
            config_schema: 2,
            blacklisted: false,
            flaky_link: false,
            rooted: true,
            group: "default",
            main_after: MAIN_NEW,
            delivery: Delivery::Full,
            agent_after: AGENT_BEFORE,
            second_round: next_as_delta,
            story: "rooted (assets.bin changed)",
        },
    ]
}
