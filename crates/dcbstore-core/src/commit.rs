//! [`CommitToken`]: where in the primary's WAL an append's commit is, so a
//! read on a replica can wait until the replica has replayed it.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A WAL position at or after an append's commit on the primary
/// (`pg_current_wal_lsn()` read after the commit, in the same round trip).
/// A replica whose `pg_last_wal_replay_lsn()` is at or past it has the
/// append. Shown and parsed as PostgreSQL shows an LSN (`0/16B3748`).
///
/// ```
/// use dcbstore_core::CommitToken;
///
/// let t: CommitToken = "0/16B3748".parse().unwrap();
/// assert_eq!(t.to_string(), "0/16B3748");
/// assert!(t < "1/0".parse().unwrap());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitToken(u64);

impl CommitToken {
    /// The token of a WAL position given as a number.
    #[must_use]
    pub fn from_lsn(lsn: u64) -> Self {
        CommitToken(lsn)
    }

    /// The WAL position as a number.
    #[must_use]
    pub fn lsn(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CommitToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for CommitToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(format!(
                "{s:?} is not a commit token: give a WAL position as PostgreSQL shows it (for example 0/16B3748)"
            ))
        };
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(CommitToken((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl serde::Serialize for CommitToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CommitToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_and_print_as_postgres_shows_an_lsn() {
        for s in ["0/0", "0/16B3748", "1/0", "FFFFFFFF/FFFFFFFF"] {
            assert_eq!(s.parse::<CommitToken>().unwrap().to_string(), s);
        }
        assert!("0-1".parse::<CommitToken>().is_err());
        assert!("G/1".parse::<CommitToken>().is_err());
        assert!("1/100000000".parse::<CommitToken>().is_err());
        let a: CommitToken = "0/FFFFFFFF".parse().unwrap();
        let b: CommitToken = "1/0".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.lsn(), 1 << 32);
    }
}
