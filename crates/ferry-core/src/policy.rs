//! The server's update decision: what to offer a device that checks in. Pure.

use crate::api::{DeltaRecord, NothingNewReason, ReleaseRecord};
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
    /// The agent can install delta packages.
    pub accepts_deltas: bool,
    /// Components for which the device has a delta-failure record (reported by the device or
    /// stored by the server): those get full packages until a full install clears the record.
    pub delta_failures: Vec<Component>,
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
    /// Offer this release as its full package.
    Full(ReleaseRecord),
    /// Offer this release as a delta from the running version.
    Delta {
        /// The release offered.
        release: ReleaseRecord,
        /// The delta from the device's running version to it.
        delta: DeltaRecord,
    },
}

impl Offer {
    /// The release offered, if any.
    pub fn release(&self) -> Option<&ReleaseRecord> {
        match self {
            Offer::NothingNew(_) => None,
            Offer::Full(r) | Offer::Delta { release: r, .. } => Some(r),
        }
    }
}

/// How to ship `release` to `device`: a delta when the device runs the delta's base version,
/// accepts deltas and has no delta-failure record for the component; the full package otherwise.
/// A live patch is always shipped whole (its payload is a patch bundle, not a release tree); a
/// device running a live patch has the files of the version it patches, so deltas are chosen by
/// that version.
fn delivery(device: &DeviceState, release: &ReleaseRecord) -> Offer {
    if release.version.live_patch_base().is_some() {
        return Offer::Full(release.clone());
    }
    let running = device.version_of(release.component);
    let files = running.live_patch_base().unwrap_or_else(|| running.clone());
    match release.delta_from(&files) {
        Some(delta) if device.accepts_deltas && !device.delta_failures.contains(&release.component) => Offer::Delta {
            release: release.clone(),
            delta: delta.clone(),
        },
        _ => Offer::Full(release.clone()),
    }
}

/// True for every full release, and for a live patch of exactly the version the device runs.
fn patches_the_running_version(device: &DeviceState, release: &ReleaseRecord) -> bool {
    release
        .version
        .live_patch_base()
        .is_none_or(|base| &base == device.version_of(release.component))
}

fn compatible(release: &ReleaseRecord, device_type: &str) -> bool {
    release.device_types.is_empty() || release.device_types.iter().any(|t| t == device_type)
}

/// Decides what to offer `device` given every known release and the current time.
///
/// A release whose rollout is halted (by a security alert) is offered to no device, whether
/// as a full package or as a delta: it is passed over as if it were not published, so the
/// device is told it is up to date or gets the newest release that is not halted.
///
/// Per component (upgrader first, so an up-to-date agent installs the main program), the
/// newest release compatible with the device type and already live is the candidate. The
/// device gets "nothing new" when it already runs that version or newer (never a downgrade),
/// or when the candidate's blacklist holds it; an older release is never offered instead.
/// The release is shipped as a delta when the server built one from the running version, the
/// agent accepts deltas and the device has no delta-failure record for the component; as the
/// full package otherwise.
///
/// A live patch (version `X+lpN`, see [`Version::live_patch_base`]) is a candidate only for a
/// device running exactly the version it patches; every other device passes over it as if it
/// were not published and follows the full-release path. It is always offered whole, never as
/// a delta.
pub fn offer(device: &DeviceState, releases: &[ReleaseRecord], now: UnixMillis) -> Offer {
    let mut reason: Option<NothingNewReason> = None;
    let mut any_compatible = false;
    for component in Component::ALL {
        let compatible_releases = releases
            .iter()
            .filter(|r| r.component == component && compatible(r, &device.device_type))
            .inspect(|_| any_compatible = true)
            .filter(|r| r.halted.is_none())
            .filter(|r| patches_the_running_version(device, r));
        let mut live: Option<&ReleaseRecord> = None;
        let mut earliest_pending: Option<u64> = None;
        for r in compatible_releases {
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
                    return delivery(device, r);
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
            accepts_deltas: true,
            delta_failures: vec![],
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
            deltas: vec![],
            halted: None,
        }
    }
    fn with_delta(mut r: ReleaseRecord, from: &str) -> ReleaseRecord {
        let from = v(from);
        r.deltas.push(DeltaRecord {
            component: r.component,
            target_name: DeltaRecord::target_name_for(r.component, &from, &r.version),
            from_version: from,
            to_version: r.version.clone(),
            length: 3,
            sha256: "11".into(),
            created_at: 0,
        });
        r
    }

    #[test]
    fn same_version_is_told_nothing_new() {
        let o = offer(&dev("1.0.0", "1.0.0"), &[rel(Component::Main, "1.0.0")], 0);
        assert_eq!(o, Offer::NothingNew(NothingNewReason::UpToDate));
    }

    #[test]
    fn newer_main_release_is_offered() {
        let o = offer(&dev("1.0.0", "1.0.0"), &[rel(Component::Main, "1.0.0"), rel(Component::Main, "1.1.0")], 0);
        assert!(matches!(o, Offer::Full(r) if r.version == v("1.1.0")));
    }

    #[test]
    fn offers_the_newest_of_several_releases() {
        let rs = [rel(Component::Main, "1.2.0"), rel(Component::Main, "1.10.0"), rel(Component::Main, "1.9.0")];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Full(r) if r.version == v("1.10.0")));
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
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[r], 0), Offer::Full(_)));
    }

    #[test]
    fn never_offers_a_downgrade() {
        let o = offer(&dev("3.0.0", "1.0.0"), &[rel(Component::Main, "2.0.0")], 0);
        assert_eq!(o, Offer::NothingNew(NothingNewReason::UpToDate));
    }

    #[test]
    fn agent_update_is_offered_before_main() {
        let rs = [rel(Component::Main, "2.0.0"), rel(Component::Agent, "1.1.0")];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Full(r) if r.component == Component::Agent));
        assert!(matches!(offer(&dev("1.0.0", "1.1.0"), &rs, 0), Offer::Full(r) if r.component == Component::Main));
    }

    #[test]
    fn release_before_go_live_is_not_offered() {
        let mut r = rel(Component::Main, "2.0.0");
        r.go_live = Some(1_000);
        assert_eq!(offer(&dev("1.0.0", "1.0.0"), &[r.clone()], 999), Offer::NothingNew(NothingNewReason::NotLiveYet { go_live: 1_000 }));
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[r], 1_000), Offer::Full(_)));
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
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[r], 0), Offer::Full(_)));
    }

    #[test]
    fn device_running_the_delta_base_gets_the_delta() {
        let r = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        match offer(&dev("1.0.0", "1.0.0"), &[r], 0) {
            Offer::Delta { release, delta } => {
                assert_eq!(release.version, v("1.1.0"));
                assert_eq!(delta.from_version, v("1.0.0"));
                assert_eq!(delta.target_name, "main/1.0.0_1.1.0.delta");
            }
            other => panic!("expected a delta, got {other:?}"),
        }
    }

    #[test]
    fn device_running_a_version_without_delta_gets_full_package() {
        let r = with_delta(rel(Component::Main, "1.2.0"), "1.1.0");
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[r], 0), Offer::Full(r) if r.version == v("1.2.0")));
    }

    #[test]
    fn rooted_device_with_failure_record_gets_full_package() {
        let r = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        let mut d = dev("1.0.0", "1.0.0");
        d.delta_failures = vec![Component::Main];
        assert!(matches!(offer(&d, &[r], 0), Offer::Full(r) if r.version == v("1.1.0")));
    }

    #[test]
    fn failure_record_of_another_component_does_not_stop_deltas() {
        let r = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        let mut d = dev("1.0.0", "1.0.0");
        d.delta_failures = vec![Component::Agent];
        assert!(matches!(offer(&d, &[r], 0), Offer::Delta { .. }));
    }

    #[test]
    fn agent_without_delta_support_gets_full_package() {
        let r = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        let mut d = dev("1.0.0", "1.0.0");
        d.accepts_deltas = false;
        assert!(matches!(offer(&d, &[r], 0), Offer::Full(_)));
    }

    #[test]
    fn delta_never_bypasses_blacklist_go_live_or_downgrade_rules() {
        let mut bl = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        bl.blacklist.push(DeviceId::new("dev-1").unwrap());
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[bl], 0), Offer::NothingNew(NothingNewReason::Blacklisted { .. })));
        let mut later = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        later.go_live = Some(50);
        assert_eq!(offer(&dev("1.0.0", "1.0.0"), &[later], 49), Offer::NothingNew(NothingNewReason::NotLiveYet { go_live: 50 }));
        let old = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        assert_eq!(offer(&dev("1.1.0", "1.0.0"), &[old], 0), Offer::NothingNew(NothingNewReason::UpToDate));
    }

    #[test]
    fn newest_release_is_offered_full_even_when_an_older_one_has_a_delta() {
        let older = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        let newest = rel(Component::Main, "1.2.0");
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[older, newest], 0), Offer::Full(r) if r.version == v("1.2.0")));
    }

    #[test]
    fn upgrader_delta_is_chosen_by_the_running_upgrader_version() {
        let r = with_delta(rel(Component::Agent, "1.1.0"), "1.0.0");
        assert!(matches!(offer(&dev("9.0.0", "1.0.0"), &[r.clone()], 0), Offer::Delta { delta, .. } if delta.component == Component::Agent));
        assert!(matches!(offer(&dev("9.0.0", "0.9.0"), &[r], 0), Offer::Full(_)));
    }

    fn halt(mut r: ReleaseRecord) -> ReleaseRecord {
        r.halted = Some(crate::api::ReleaseHalt { alert_id: 1, since: 0 });
        r
    }

    #[test]
    fn halted_release_is_offered_to_nobody() {
        let halted = halt(with_delta(rel(Component::Main, "2.0.0"), "1.0.0"));
        // Any device, full package or delta, any device type it is for: nothing.
        for (main, deltas) in [("1.0.0", true), ("1.0.0", false), ("0.5.0", true)] {
            let mut d = dev(main, "1.0.0");
            d.accepts_deltas = deltas;
            assert_eq!(offer(&d, &[halted.clone()], 0), Offer::NothingNew(NothingNewReason::UpToDate));
        }
        let mut any_type = halt(rel(Component::Main, "2.0.0"));
        any_type.device_types.clear();
        let mut other = dev("1.0.0", "1.0.0");
        other.device_type = "camera".into();
        assert_eq!(offer(&other, &[any_type], 0), Offer::NothingNew(NothingNewReason::UpToDate));
        // A halted upgrader release does not hold back the main program.
        let rs = [halt(rel(Component::Agent, "1.1.0")), rel(Component::Main, "2.0.0")];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Full(r) if r.component == Component::Main));
    }

    #[test]
    fn halted_newest_release_leaves_the_previous_good_one_on_offer() {
        let rs = [rel(Component::Main, "1.1.0"), halt(rel(Component::Main, "1.2.0"))];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Full(r) if r.version == v("1.1.0")));
        assert_eq!(offer(&dev("1.1.0", "1.0.0"), &rs, 0), Offer::NothingNew(NothingNewReason::UpToDate));
        // Resuming (clearing the halt) offers it again.
        let resumed = [rel(Component::Main, "1.1.0"), rel(Component::Main, "1.2.0")];
        assert!(matches!(offer(&dev("1.1.0", "1.0.0"), &resumed, 0), Offer::Full(r) if r.version == v("1.2.0")));
    }

    #[test]
    fn live_patch_is_offered_to_a_device_running_exactly_the_version_it_patches() {
        let rs = [rel(Component::Main, "1.0.0"), rel(Component::Main, "1.0.0+lp1")];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Full(r) if r.version == v("1.0.0+lp1")));
    }

    #[test]
    fn device_on_another_version_gets_the_full_release_not_the_live_patch() {
        let rs = [rel(Component::Main, "1.0.0"), rel(Component::Main, "1.0.0+lp1")];
        // Older device: the full 1.0.0 (the patch does not fit its binary).
        assert!(matches!(offer(&dev("0.9.0", "1.0.0"), &rs, 0), Offer::Full(r) if r.version == v("1.0.0")));
        // Newer device: nothing (a patch of an older version is never a downgrade path).
        assert_eq!(offer(&dev("1.1.0", "1.0.0"), &rs, 0), Offer::NothingNew(NothingNewReason::UpToDate));
        // Only the patch is published and the device runs another version: nothing new.
        let only = [rel(Component::Main, "1.0.0+lp1")];
        assert_eq!(offer(&dev("0.9.0", "1.0.0"), &only, 0), Offer::NothingNew(NothingNewReason::UpToDate));
    }

    #[test]
    fn newer_full_release_wins_over_a_live_patch() {
        let rs = [rel(Component::Main, "1.0.0+lp1"), rel(Component::Main, "1.0.1")];
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &rs, 0), Offer::Full(r) if r.version == v("1.0.1")));
    }

    #[test]
    fn live_patched_device_is_up_to_date_and_gets_no_other_patch_of_its_base() {
        let rs = [rel(Component::Main, "1.0.0+lp1"), rel(Component::Main, "1.0.0+lp2")];
        assert_eq!(offer(&dev("1.0.0+lp1", "1.0.0"), &rs[..1], 0), Offer::NothingNew(NothingNewReason::UpToDate));
        // lp2 patches 1.0.0, but this process already runs 1.0.0+lp1: not exactly the base.
        assert_eq!(offer(&dev("1.0.0+lp1", "1.0.0"), &rs, 0), Offer::NothingNew(NothingNewReason::UpToDate));
    }

    #[test]
    fn live_patch_is_never_offered_as_a_delta() {
        let lp = with_delta(rel(Component::Main, "1.0.0+lp1"), "1.0.0");
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[lp], 0), Offer::Full(r) if r.version == v("1.0.0+lp1")));
    }

    #[test]
    fn live_patched_device_gets_the_next_release_as_a_delta_from_the_files_it_has() {
        // The storage space holds 1.0.0's files; a delta built from the patch release (its
        // payload is a bundle) must never be chosen.
        let mut next = with_delta(rel(Component::Main, "1.1.0"), "1.0.0");
        next = with_delta(next, "1.0.0+lp1");
        match offer(&dev("1.0.0+lp1", "1.0.0"), &[next], 0) {
            Offer::Delta { delta, .. } => assert_eq!(delta.from_version, v("1.0.0")),
            other => panic!("expected the delta from 1.0.0, got {other:?}"),
        }
        let only_from_patch = with_delta(rel(Component::Main, "1.1.0"), "1.0.0+lp1");
        assert!(matches!(offer(&dev("1.0.0+lp1", "1.0.0"), &[only_from_patch], 0), Offer::Full(_)));
    }

    #[test]
    fn live_patch_obeys_blacklist_go_live_and_halt() {
        let mut bl = rel(Component::Main, "1.0.0+lp1");
        bl.blacklist.push(DeviceId::new("dev-1").unwrap());
        assert!(matches!(offer(&dev("1.0.0", "1.0.0"), &[bl], 0), Offer::NothingNew(NothingNewReason::Blacklisted { .. })));
        let mut later = rel(Component::Main, "1.0.0+lp1");
        later.go_live = Some(50);
        assert_eq!(offer(&dev("1.0.0", "1.0.0"), &[later.clone()], 49), Offer::NothingNew(NothingNewReason::NotLiveYet { go_live: 50 }));
        // A device the patch does not fit is not told to wait for it.
        assert_eq!(offer(&dev("0.9.0", "1.0.0"), &[later], 49), Offer::NothingNew(NothingNewReason::UpToDate));
        assert_eq!(offer(&dev("1.0.0", "1.0.0"), &[halt(rel(Component::Main, "1.0.0+lp1"))], 0), Offer::NothingNew(NothingNewReason::UpToDate));
    }

    proptest::proptest! {
        #[test]
        fn live_patch_is_offered_only_to_devices_running_its_base(
            running in 0u64..4, patched in proptest::collection::vec(0u64..4, 0..4), full in proptest::collection::vec(0u64..4, 0..3)
        ) {
            let mut rs: Vec<_> = patched.iter().map(|m| with_delta(rel(Component::Main, &format!("1.{m}.0+lp1")), &format!("1.{m}.0"))).collect();
            rs.extend(full.iter().map(|m| rel(Component::Main, &format!("1.{m}.0"))));
            let d = dev(&format!("1.{running}.0"), "1.0.0");
            let o = offer(&d, &rs, 0);
            if let Some(r) = o.release() {
                proptest::prop_assert!(r.version > d.main_version);
                if let Some(base) = r.version.live_patch_base() {
                    proptest::prop_assert_eq!(&base, &d.main_version);
                    proptest::prop_assert!(matches!(o, Offer::Full(_)));
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn halted_releases_are_never_offered(
            running in 0u64..10, versions in proptest::collection::vec((0u64..10, proptest::bool::ANY), 0..8)
        ) {
            let rs: Vec<_> = versions.iter().map(|(m, halted)| {
                let r = rel(Component::Main, &format!("1.{m}.0"));
                if *halted { halt(r) } else { r }
            }).collect();
            let d = dev(&format!("1.{running}.0"), "1.0.0");
            if let Some(r) = offer(&d, &rs, 0).release() {
                proptest::prop_assert!(r.halted.is_none());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn delta_is_offered_exactly_when_base_matches_and_no_failure_record(
            running in 0u64..4, base in 0u64..4, failed in proptest::bool::ANY, accepts in proptest::bool::ANY
        ) {
            let r = with_delta(rel(Component::Main, "1.9.0"), &format!("1.{base}.0"));
            let mut d = dev(&format!("1.{running}.0"), "1.0.0");
            d.accepts_deltas = accepts;
            if failed { d.delta_failures.push(Component::Main); }
            let o = offer(&d, &[r], 0);
            let want_delta = running == base && !failed && accepts;
            proptest::prop_assert_eq!(matches!(o, Offer::Delta { .. }), want_delta);
            proptest::prop_assert!(o.release().is_some());
        }
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
            if let Some(r) = offer(&d, &rs, 0).release() {
                proptest::prop_assert!(r.version > d.main_version);
                proptest::prop_assert!(!r.blacklist.contains(&d.id));
                proptest::prop_assert!(rs.iter().all(|o| o.version <= r.version));
            }
        }
    }
}
