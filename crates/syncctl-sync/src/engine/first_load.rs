//! The bulk first load: a run that starts with no links for its sync and an empty side to
//! write into creates every record it reads from the other side there, so it needs neither
//! the link lookups nor the natural-key lookups a window otherwise costs (there is nothing to
//! find), and lets a window's state-store commit run while the next window is written.
//!
//! Nothing else changes: the plan is the normal path's (a record with no link and no
//! natural-key match is created; twins and duplicate natural keys in the read are refused the
//! same way), it is persisted as `planned` audit rows before the writes, read back, and linked
//! and audited per record in the same commit. A bulk run killed anywhere leaves what a normal
//! run leaves: the next run finds the side no longer empty (or links present), takes the normal
//! path, and its recovery links what the killed run created by natural key.

use syncctl_core::ReadRequest;

use super::{Engine, idx};
use crate::error::SyncError;
use crate::store::Side;

/// What decides whether a run first-loads a side in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FirstLoadFacts {
    /// The run writes nothing (`--dry-run`, `sync plan`): it keeps the normal path, whose plan
    /// it reports.
    pub(super) dry_run: bool,
    /// The run only applies decided conflicts (`--apply`).
    pub(super) only_links: bool,
    /// The state store holds links of this sync (after the recovery of killed runs).
    pub(super) has_links: bool,
    /// Records are waiting to be read again (rejected or failed on an earlier run).
    pub(super) has_pending: bool,
    /// Per side (by [`idx`]): the direction writes into it.
    pub(super) writes: [bool; 2],
    /// Per side (by [`idx`]): it held no record at all at the start (`None`: not looked at).
    pub(super) empty: [Option<bool>; 2],
}

/// The side to first-load in bulk, if the run qualifies: no links, nothing pending, a real
/// run, and exactly one written side empty (two empty sides have nothing to load; a written
/// side with any record in it, even one out of the filter's scope, needs the natural-key match).
pub(super) fn bulk_side(f: &FirstLoadFacts) -> Option<Side> {
    if f.dry_run || f.only_links || f.has_links || f.has_pending {
        return None;
    }
    let candidates: Vec<Side> = [Side::Source, Side::Target]
        .into_iter()
        .filter(|s| f.writes[idx(*s)] && f.empty[idx(*s)] == Some(true))
        .collect();
    match candidates.as_slice() {
        [side] if f.empty[idx(side.other())] != Some(true) => Some(*side),
        _ => None,
    }
}

impl<'a> Engine<'a> {
    /// Looks at the state store and, when it has no links of this sync, at the written sides
    /// (one keys-only record each) to decide [`bulk_side`]. Runs after the recovery of killed
    /// runs, which may have linked what they created.
    pub(super) async fn first_load_side(&mut self) -> Result<Option<Side>, SyncError> {
        let mut facts = FirstLoadFacts {
            dry_run: self.s.dry_run || self.store.is_read_only(),
            only_links: self.s.only_links.is_some(),
            has_links: false,
            has_pending: self.pending.iter().any(|p| !p.is_empty()),
            writes: [
                self.cfg.direction.to_source(),
                self.cfg.direction.to_target(),
            ],
            empty: [None, None],
        };
        if facts.dry_run || facts.only_links || facts.has_pending {
            return Ok(None);
        }
        facts.has_links = self.store.count_links(&self.cfg.name).await? > 0;
        if facts.has_links {
            return Ok(None);
        }
        for side in [Side::Source, Side::Target] {
            if !facts.writes[idx(side)] {
                continue;
            }
            let src = self.sides[idx(side)].source;
            let schema = self.sides[idx(side)].schema.clone();
            let page = src
                .read_page(
                    &schema,
                    &ReadRequest {
                        since: None,
                        after: None,
                        limit: 1,
                        keys_only: true,
                    },
                )
                .await
                .map_err(|e| self.read_failed(side, e))?;
            facts.empty[idx(side)] = Some(page.records.is_empty());
        }
        Ok(bulk_side(&facts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source-to-target first load into an empty target: the case the mode is for.
    fn first_load() -> FirstLoadFacts {
        FirstLoadFacts {
            dry_run: false,
            only_links: false,
            has_links: false,
            has_pending: false,
            writes: [false, true],
            empty: [Some(false), Some(true)],
        }
    }

    #[test]
    fn an_empty_target_with_no_links_is_loaded_in_bulk() {
        assert_eq!(bulk_side(&first_load()), Some(Side::Target));
        // The source need not have been looked at.
        let f = FirstLoadFacts {
            empty: [None, Some(true)],
            ..first_load()
        };
        assert_eq!(bulk_side(&f), Some(Side::Target));
    }

    #[test]
    fn a_target_holding_any_record_takes_the_normal_path() {
        let f = FirstLoadFacts {
            empty: [Some(false), Some(false)],
            ..first_load()
        };
        assert_eq!(bulk_side(&f), None);
        let unknown = FirstLoadFacts {
            empty: [Some(false), None],
            ..first_load()
        };
        assert_eq!(bulk_side(&unknown), None, "not looked at is not empty");
    }

    #[test]
    fn links_or_pending_records_take_the_normal_path() {
        let links = FirstLoadFacts {
            has_links: true,
            ..first_load()
        };
        assert_eq!(bulk_side(&links), None);
        let pending = FirstLoadFacts {
            has_pending: true,
            ..first_load()
        };
        assert_eq!(bulk_side(&pending), None);
    }

    #[test]
    fn dry_runs_and_conflict_applies_take_the_normal_path() {
        let dry = FirstLoadFacts {
            dry_run: true,
            ..first_load()
        };
        assert_eq!(bulk_side(&dry), None);
        let apply = FirstLoadFacts {
            only_links: true,
            ..first_load()
        };
        assert_eq!(bulk_side(&apply), None);
    }

    #[test]
    fn an_empty_side_the_direction_does_not_write_is_not_loaded() {
        let f = FirstLoadFacts {
            writes: [false, true],
            empty: [Some(true), Some(false)],
            ..first_load()
        };
        assert_eq!(bulk_side(&f), None);
    }

    #[test]
    fn bidirectional_loads_the_one_empty_side_and_nothing_when_both_or_neither_are() {
        let both_ways = FirstLoadFacts {
            writes: [true, true],
            ..first_load()
        };
        assert_eq!(bulk_side(&both_ways), Some(Side::Target));
        let into_source = FirstLoadFacts {
            empty: [Some(true), Some(false)],
            ..both_ways
        };
        assert_eq!(bulk_side(&into_source), Some(Side::Source));
        let neither = FirstLoadFacts {
            empty: [Some(false), Some(false)],
            ..both_ways
        };
        assert_eq!(bulk_side(&neither), None);
        let both = FirstLoadFacts {
            empty: [Some(true), Some(true)],
            ..both_ways
        };
        assert_eq!(bulk_side(&both), None, "two empty sides: nothing to load");
    }
}
