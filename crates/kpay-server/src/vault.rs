//! Sealing SIDs at rest. A SID is a billing credential: whoever holds it (with the CID) can charge
//! the buyer. The ledger keeps it sealed with XChaCha20-Poly1305 (a random 24-byte nonce per
//! seal, so no nonce bookkeeping), bound to its subscription's id as associated data so that a
//! sealed SID copied onto another row does not open. The key comes from `KPAY_ENCRYPTION_KEY`
//! (64 hex digits) or is generated once into `<data-dir>/encryption.key` with mode 0600.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::Path;

/// The prefix of the sealed form (a version, should the scheme ever change).
const PREFIX: &str = "v1:";

/// Why the vault cannot open or seal.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The configured key is not 64 hex digits.
    #[error(
        "{source_name} must be 64 hex digits (32 bytes); generate one with `openssl rand -hex 32`"
    )]
    BadKey {
        /// Where the key came from.
        source_name: String,
    },
    /// The key file could not be read or written.
    #[error("cannot use the encryption key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A sealed value does not open with this key (another key, or a damaged row).
    #[error(
        "a sealed SID does not open with this encryption key (every instance must use the same KPAY_ENCRYPTION_KEY)"
    )]
    Open,
    /// Sealing failed (never expected).
    #[error("sealing failed")]
    Seal,
}

/// Seals and opens SIDs.
#[derive(Clone)]
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(<key>)")
    }
}

impl Vault {
    /// The configured key, or the data directory's, generated on first use.
    pub fn load(configured: Option<&SecretString>, data_dir: &Path) -> Result<Vault, VaultError> {
        if let Some(key) = configured {
            return Self::from_hex(key.expose_secret(), "KPAY_ENCRYPTION_KEY");
        }
        let path = data_dir.join("encryption.key");
        let file_err = |source| VaultError::File {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_hex(text.trim(), &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(file_err)?;
                let mut key = [0u8; 32];
                rand::fill(&mut key);
                let text = hex::encode(key);
                write_new_secret(&path, &text).map_err(file_err)?;
                Self::from_hex(&text, &path.display().to_string())
            }
            Err(e) => Err(file_err(e)),
        }
    }

    /// A vault with a fresh random key (tests).
    pub fn ephemeral() -> Vault {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Vault {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    fn from_hex(text: &str, source_name: &str) -> Result<Vault, VaultError> {
        let bad = || VaultError::BadKey {
            source_name: source_name.to_owned(),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Vault {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// `secret` sealed for the record `owner`: `v1:<hex nonce><hex ciphertext>`.
    pub fn seal(&self, owner: &str, secret: &str) -> Result<String, VaultError> {
        let mut nonce = [0u8; 24];
        rand::fill(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Seal)?;
        Ok(format!(
            "{PREFIX}{}{}",
            hex::encode(nonce),
            hex::encode(sealed)
        ))
    }

    /// Opens what [`Vault::seal`] made for `owner`.
    pub fn open(&self, owner: &str, sealed: &str) -> Result<String, VaultError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(VaultError::Open)?;
        let bytes = hex::decode(body).map_err(|_| VaultError::Open)?;
        if bytes.len() < 24 {
            return Err(VaultError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Open)?;
        String::from_utf8(plain).map_err(|_| VaultError::Open)
    }
}

/// Creates `path` with mode 0600 (never over an existing file: two first starts must not each
/// write their own key).
fn write_new_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    writeln!(f, "{secret}")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_sid_opens_only_for_its_owner_with_its_key() {
        let v = Vault::ephemeral();
        let sealed = v.seal("sub_a", "S1234567890123456789").unwrap();
        assert!(!sealed.contains("S1234567890123456789"));
        assert_eq!(v.open("sub_a", &sealed).unwrap(), "S1234567890123456789");
        assert!(matches!(v.open("sub_b", &sealed), Err(VaultError::Open)));
        assert!(matches!(
            Vault::ephemeral().open("sub_a", &sealed),
            Err(VaultError::Open)
        ));
        // Two seals of one SID differ (random nonces).
        assert_ne!(sealed, v.seal("sub_a", "S1234567890123456789").unwrap());
    }

    #[test]
    fn the_generated_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Vault::load(None, dir.path()).unwrap();
        let sealed = a.seal("o", "secret").unwrap();
        let b = Vault::load(None, dir.path()).unwrap();
        assert_eq!(b.open("o", &sealed).unwrap(), "secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("encryption.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = SecretString::from("not hex");
        assert!(matches!(
            Vault::load(Some(&bad), dir.path()),
            Err(VaultError::BadKey { .. })
        ));
    }
}
