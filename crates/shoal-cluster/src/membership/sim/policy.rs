//! The behaviour of the simulated membership driver: production's, or production with
//! proposed changes switched on through `SHOAL_SIM_PROPOSED`, so that their effect on the
//! properties can be measured before `driver.rs` and `SwimTuning` adopt them.

use std::time::Duration;

use crate::membership::SwimTuning;

/// How the simulated driver behaves. [`Policy::production`] mirrors `driver.rs` and the
/// default [`SwimTuning`]; the other settings model proposed changes, so their effect
/// can be measured (`SHOAL_SIM_PROPOSED`, see [`Policy::from_env`]).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Re-announce every `seed_retry` while foca is not active (after an automatic
    /// rejoin under a renewed identity, or when it knows no member), to the seeds and up
    /// to three known members; production re-announces only while it knows no member.
    pub reannounce_while_inactive: bool,
    /// Do not send a `TurnUndead` to a member foca still lists as active (foca 2.0.0 sends
    /// one when a suspicion times out even if the member refuted it in time).
    pub drop_stale_turn_undead: bool,
    /// Replaces `Config::max_transmissions` (production: 4, from `new_lan(16)`).
    pub max_transmissions: Option<u8>,
    /// Replaces the frequency of `Config::periodic_announce_to_down_members`
    /// (production: 65 s).
    pub announce_to_down_every: Option<Duration>,
}

impl Policy {
    /// Exactly what production does (`driver.rs` re-announces while inactive and drops
    /// stale `TurnUndead`s; the transmission count and the announce-to-down period come
    /// from [`SwimTuning`]).
    pub fn production() -> Self {
        Self {
            reannounce_while_inactive: true,
            drop_stale_turn_undead: true,
            max_transmissions: None,
            announce_to_down_every: None,
        }
    }

    /// Production without the fixes the simulator led to (foca's `new_lan(16)` settings,
    /// no re-announce while inactive, stale `TurnUndead`s sent): `SHOAL_SIM_PROPOSED=none`
    /// shows the failures they fixed.
    pub fn before_fixes() -> Self {
        Self {
            reannounce_while_inactive: false,
            drop_stale_turn_undead: false,
            max_transmissions: Some(4),
            announce_to_down_every: Some(Duration::from_secs(65)),
        }
    }

    /// Production, unless `SHOAL_SIM_PROPOSED` lists changes to try (comma-separated:
    /// `reannounce`, `turn-undead`, `max-tx=<n>`, `announce-down=<ms>`, or `all`).
    pub fn from_env() -> Self {
        let mut policy = Self::production();
        let Ok(list) = std::env::var("SHOAL_SIM_PROPOSED") else {
            return policy;
        };
        for item in list.split(',').map(str::trim) {
            match item.split_once('=') {
                _ if item == "none" => policy = Self::before_fixes(),
                _ if item == "all" => {
                    policy.reannounce_while_inactive = true;
                    policy.drop_stale_turn_undead = true;
                    policy.max_transmissions = Some(8);
                    policy.announce_to_down_every = Some(Duration::from_secs(2));
                }
                _ if item == "reannounce" => policy.reannounce_while_inactive = true,
                _ if item == "turn-undead" => policy.drop_stale_turn_undead = true,
                Some(("max-tx", n)) => {
                    policy.max_transmissions = Some(n.parse().expect("max-tx=<u8>"));
                }
                Some(("announce-down", ms)) => {
                    let ms = ms.parse().expect("announce-down=<ms>");
                    policy.announce_to_down_every = Some(Duration::from_millis(ms));
                }
                _ => panic!("unknown SHOAL_SIM_PROPOSED item {item:?}"),
            }
        }
        policy
    }

    /// The foca configuration a node runs with.
    pub fn config(&self, tuning: &SwimTuning) -> foca::Config {
        let mut config = tuning.foca_config();
        if let Some(n) = self.max_transmissions.and_then(std::num::NonZeroU8::new) {
            config.max_transmissions = n;
        }
        if let Some(every) = self.announce_to_down_every {
            if let Some(params) = &mut config.periodic_announce_to_down_members {
                params.frequency = every;
            }
        }
        config
    }
}

pub(super) use crate::membership::driver::is_turn_undead;
