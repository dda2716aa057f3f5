//! The server's update decision: what to offer a device that checks in. Pure.

use crate::api::{NothingNewReason, ReleaseRecord};
use crate::{Component, DeviceId, UnixMillis, Version};

/// What the server knows about a device at check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// Identity.
    pub id: DeviceId,
    /// Hardware type.
    pub device_type: String,
    /// Running upgrader version.
    pub upgrader_version: Version,
    /// Running main-program version.
    pub main_version: Version,
}

impl DeviceState {
    /// The running version of `component`.
    pub fn version_of(&self, component: Component) -> &Version {
        match component {
            Component::Main => &self.main_version,
            Component::Agent => &self.upgrader_version,
        }
    }
}

/// The decision for one check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Answer "nothing new", with the reason.
    NothingNew(NothingNewReason),
    /// Offer this release.
    Update(ReleaseRecord),
}

fn compatible(release: &ReleaseRecord, device_type: &str) -> bool {
    release.device_types.is_empty() || release.device_types.iter().any(|t| t == device_type)
}

/// Decides what to offer `device` given every known release and the current time.
///
/// Per component (upgrader first, so an up-to-date agent installs the main program), the
/// newest release compatible with the device type and already live is the candidate. The
/// device gets "nothing new" when it already runs that version or newer (never a downgrade),
/// or when the candidate's blacklist holds it; an older release is never offered instead.
pub fn offer(device: &DeviceState, releases: &[ReleaseRecord], now: UnixMillis) -> Offer {
    let mut reason: Option<NothingNewReason> = None;
    let mut any_compatible = false;
    for component in Component::ALL {
        let compatible_releases = releases
            .iter()
            .filter(|r| r.component == component && compatible(r, &device.device_type));
        let mut live: Option<&ReleaseRecord> = None;
        let mut earliest_pending: Option<u64> = None;
        for r in compatible_releases {
            any_compatible = true;
            match r.go_live {
                Some(at) if at > now => {
                    if &r.version > device.version_of(component) {
                        earliest_pending = Some(earliest_pending.map_or(at, |e| e.min(at)));
                    }
                }
                _ => {
                    if live.is_none_or(|l| r.version > l.version) {
                        live = Some(r);
                    }
                }
            }
        }
        match live {
            Some(r) if &r.version > device.version_of(component) => {
                if r.blacklist.contains(&device.id) {
                    reason.get_or_insert(NothingNewReason::Blacklisted {
                        component,
                        version: r.version.clone(),
                    });
                } else {
                    return Offer::Update(r.clone());
                }
            }
            _ => {
                if let Some(at) = earliest_pending {
                    reason.get_or_insert(NothingNewReason::NotLiveYet { go_live: at });
                }
            }
        }
    }
    Offer::NothingNew(reason.unwrap_or(if any_compatible {
        NothingNewReason::UpToDate
    } else {
        NothingNewReason::NoReleaseForDeviceType
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }
    fn dev(main: &str, agent: &str) -> DeviceState {
        DeviceState {
            id: DeviceId::new("dev-1").unwrap(),
            device_type: "gw".into(),
            upgrader_version: v(agent),
            main_version: v(main),
        }
    }
    fn rel(c: Component, ver: &str) -> ReleaseRecord {
        ReleaseRecord {
            component: c,
            version: v(ver),
            device_types: vec!["gw".into()],
            target_name: format!("{c}/{ver}.ferry"),
            length: 10,
            sha256: "00".into(),
            blacklist: vec![],
            go_live: None,
            created_at: 0,
        }
    }

    #[test]
    fn same_version_is_told_nothing_new() {
        let o = offer(&dev("1.0.0", "1.0.0"), &[rel(Component::Main, "1.0.0")], 0);
        assert_eq!(o, Offer::NothingNew(NothingNewReason::UpToDate));
    }

    #[test]
    fn newer_main_release_is_offered() {
        let o = offer(&dev("1.0.0", "1.0.0"), &[rel(Component::Main, "1.0.0"), rel(Component::Main, "1.1.0")], 0);
        assert!(matches!(o, Offer::Update(r) if r.version == v("1.1.0")));
    }

    #[test]
    fn offers_the_newest_of_several_releases() {
        let rs = [rel(Component::Main, "1.2.0"), rel(Component::Main, "1.10.0"), rel(Component::Main, "1.9.0")];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Update(r) if r.version == v("1.10.0")));
    }

    #[test]
    fn blacklisted_device_is_told_nothing_new() {
        let mut r = rel(Component::Main, "2.0.0");
        r.blacklist.push(DeviceId::new("dev-1").unwrap());
        let o = offer(&dev("1.0.0", "1.0.0"), &[rel(Component::Main, "1.5.0"), r], 0);
        assert_eq!(
            o,
            Offer::NothingNew(NothingNewReason::Blacklisted { component: Component::Main, version: v("2.0.0") })
        );
    }

    #[test]
    fn blacklist_of_one_device_does_not_affect_another() {
        let mut r = rel(Component::Main, "2.0.0");
        r.blacklist.push(DeviceId::new("other").unwrap());
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[r], 0), Offer::Update(_)));
    }

    #[test]
    fn never_offers_a_downgrade() {
        let o = offer(&dev("3.0.0", "1.0.0"), &[rel(Component::Main, "2.0.0")], 0);
        assert_eq!(o, Offer::NothingNew(NothingNewReason::UpToDate));
    }

    #[test]
    fn agent_update_is_offered_before_main() {
        let rs = [rel(Component::Main, "2.0.0"), rel(Component::Agent, "1.1.0")];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Update(r) if r.component == Component::Agent));
        assert!(matches!(offer(&dev("1.0.0", "1.1.0"), &rs, 0), Offer::Update(r) if r.component == Component::Main));
    }

    #[test]
    fn release_before_go_live_is_not_offered() {
        let mut r = rel(Component::Main, "2.0.0");
        r.go_live = Some(1_000);
        assert_eq!(offer(&dev("1.0.0", "1.0.0"), &[r.clone()], 999), Offer::NothingNew(NothingNewReason::NotLiveYet { go_live: 1_000 }));
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[r], 1_000), Offer::Update(_)));
    }

    #[test]
    fn incompatible_device_type_gets_no_release() {
        let mut r = rel(Component::Main, "2.0.0");
        r.device_types = vec!["camera".into()];
        assert_eq!(offer(&dev("1.0.0", "1.0.0"), &[r], 0), Offer::NothingNew(NothingNewReason::NoReleaseForDeviceType));
    }

    #[test]
    fn empty_device_types_means_any_device() {
        let mut r = rel(Component::Main, "2.0.0");
        r.device_types.clear();
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[r], 0), Offer::Update(_)));
    }

    proptest::proptest! {
        #[test]
        fn offered_version_is_always_newer_and_not_blacklisted(
            running in 0u64..20, versions in proptest::collection::vec((0u64..20, proptest::bool::ANY), 0..8)
        ) {
            let rs: Vec<_> = versions.iter().map(|(m, bl)| {
                let mut r = rel(Component::Main, &format!("1.{m}.0"));
                if *bl { r.blacklist.push(DeviceId::new("dev-1").unwrap()); }
                r
            }).collect();
            let d = dev(&format!("1.{running}.0"), "1.0.0");
            if let Offer::Update(r) = offer(&d, &rs, 0) {
                proptest::prop_assert!(r.version > d.main_version);
                proptest::prop_assert!(!r.blacklist.contains(&d.id));
                proptest::prop_assert!(rs.iter().all(|o| o.version <= r.version));
            }
        }
    }
}
