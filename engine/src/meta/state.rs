//! [`MetaState`]: the metadata tables as ordered maps in memory, and the encodings of
//! commands and of the whole state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Applied, Bucket, Command, DataRef, Member, MetaTables, ObjectPart, PartInfo, Stored,
    UploadHead, access, apply, decode, encode, keys,
};
use crate::env::NodeId;

/// The replicated metadata in memory: the simulator's model, and the input of the
/// applied-log digest. The same tables as `crate::meta::store`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub buckets: BTreeMap<String, Bucket>,
    /// (bucket, key) -> current version.
    pub objects: BTreeMap<(String, String), Stored>,
    /// (bucket, key, version) -> noncurrent version.
    pub versions: BTreeMap<(String, String, u64), Stored>,
    /// (version, index) -> part of a completed multipart object.
    pub object_parts: BTreeMap<(u64, u32), ObjectPart>,
    pub uploads: BTreeMap<String, UploadHead>,
    /// (upload id, part number) -> part.
    pub parts: BTreeMap<(String, u32), PartInfo>,
    pub members: BTreeMap<NodeId, Member>,
    pub data_refs: BTreeMap<u128, DataRef>,
    /// Access key id -> key.
    pub keys: BTreeMap<String, keys::AccessKey>,
    /// (bucket, name) -> setting.
    pub settings: BTreeMap<(String, String), access::Setting>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

fn triple(a: &str, b: &str, v: u64) -> (String, String, u64) {
    (a.to_string(), b.to_string(), v)
}

impl MetaTables for MetaState {
    type Error = std::convert::Infallible;

    fn bucket(&self, name: &str) -> Result<Option<Bucket>, Self::Error> {
        Ok(self.buckets.get(name).cloned())
    }
    fn put_bucket(&mut self, name: &str, bucket: &Bucket) -> Result<(), Self::Error> {
        self.buckets.insert(name.to_string(), bucket.clone());
        Ok(())
    }
    fn remove_bucket(&mut self, name: &str) -> Result<(), Self::Error> {
        self.buckets.remove(name);
        Ok(())
    }
    fn bucket_is_empty(&self, name: &str) -> Result<bool, Self::Error> {
        Ok(self.objects_in(name).next().is_none())
    }
    fn object(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error> {
        Ok(self.objects.get(&pair(bucket, key)).cloned())
    }
    fn put_object(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error> {
        self.objects.insert(pair(bucket, key), s.clone());
        Ok(())
    }
    fn remove_object(&mut self, bucket: &str, key: &str) -> Result<(), Self::Error> {
        self.objects.remove(&pair(bucket, key));
        Ok(())
    }
    fn version(&self, bucket: &str, key: &str, v: u64) -> Result<Option<Stored>, Self::Error> {
        Ok(self.versions.get(&triple(bucket, key, v)).cloned())
    }
    fn put_version(&mut self, bucket: &str, key: &str, s: &Stored) -> Result<(), Self::Error> {
        self.versions
            .insert(triple(bucket, key, s.version), s.clone());
        Ok(())
    }
    fn remove_version(&mut self, bucket: &str, key: &str, v: u64) -> Result<(), Self::Error> {
        self.versions.remove(&triple(bucket, key, v));
        Ok(())
    }
    fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Stored>, Self::Error> {
        Ok(self
            .versions
            .range(triple(bucket, key, 0)..=triple(bucket, key, u64::MAX))
            .map(|(_, s)| s.clone())
            .collect())
    }
    fn newest_version(&self, bucket: &str, key: &str) -> Result<Option<Stored>, Self::Error> {
        Ok(self
            .versions
            .range(triple(bucket, key, 0)..=triple(bucket, key, u64::MAX))
            .next_back()
            .map(|(_, s)| s.clone()))
    }
    fn put_object_part(&mut self, v: u64, i: u32, p: &ObjectPart) -> Result<(), Self::Error> {
        self.object_parts.insert((v, i), p.clone());
        Ok(())
    }
    fn object_parts(&self, version: u64) -> Result<Vec<ObjectPart>, Self::Error> {
        Ok(self
            .object_parts
            .range((version, 0)..=(version, u32::MAX))
            .map(|(_, p)| p.clone())
            .collect())
    }
    fn object_part(&self, version: u64, index: u32) -> Result<Option<ObjectPart>, Self::Error> {
        Ok(self.object_parts.get(&(version, index)).cloned())
    }
    fn remove_object_parts(&mut self, version: u64) -> Result<(), Self::Error> {
        self.object_parts.retain(|(v, _), _| *v != version);
        Ok(())
    }
    fn upload(&self, id: &str) -> Result<Option<UploadHead>, Self::Error> {
        Ok(self.uploads.get(id).cloned())
    }
    fn put_upload(&mut self, id: &str, head: &UploadHead) -> Result<(), Self::Error> {
        self.uploads.insert(id.to_string(), head.clone());
        Ok(())
    }
    fn remove_upload(&mut self, id: &str) -> Result<(), Self::Error> {
        self.uploads.remove(id);
        Ok(())
    }
    fn upload_ids(&self) -> Result<Vec<String>, Self::Error> {
        Ok(self.uploads.keys().cloned().collect())
    }
    fn part(&self, id: &str, part: u32) -> Result<Option<PartInfo>, Self::Error> {
        Ok(self.parts.get(&(id.to_string(), part)).cloned())
    }
    fn put_part(&mut self, id: &str, part: u32, info: &PartInfo) -> Result<(), Self::Error> {
        self.parts.insert((id.to_string(), part), info.clone());
        Ok(())
    }
    fn parts(&self, id: &str) -> Result<Vec<(u32, PartInfo)>, Self::Error> {
        Ok(self
            .parts
            .range((id.to_string(), 0)..=(id.to_string(), u32::MAX))
            .map(|((_, n), p)| (*n, p.clone()))
            .collect())
    }
    fn remove_parts(&mut self, id: &str) -> Result<(), Self::Error> {
        self.parts.retain(|(u, _), _| u != id);
        Ok(())
    }
    fn put_member(&mut self, node: NodeId, member: &Member) -> Result<(), Self::Error> {
        self.members.insert(node, member.clone());
        Ok(())
    }
    fn remove_member(&mut self, node: NodeId) -> Result<(), Self::Error> {
        self.members.remove(&node);
        Ok(())
    }
    fn data_ref(&self, data_id: u128) -> Result<Option<DataRef>, Self::Error> {
        Ok(self.data_refs.get(&data_id).cloned())
    }
    fn put_data_ref(&mut self, data_id: u128, r: &DataRef) -> Result<(), Self::Error> {
        self.data_refs.insert(data_id, r.clone());
        Ok(())
    }
    fn remove_data_ref(&mut self, data_id: u128) -> Result<(), Self::Error> {
        self.data_refs.remove(&data_id);
        Ok(())
    }
    fn access_key(&self, id: &str) -> Result<Option<keys::AccessKey>, Self::Error> {
        Ok(self.keys.get(id).cloned())
    }
    fn put_access_key(&mut self, id: &str, key: &keys::AccessKey) -> Result<(), Self::Error> {
        self.keys.insert(id.to_string(), key.clone());
        Ok(())
    }
    fn remove_access_key(&mut self, id: &str) -> Result<(), Self::Error> {
        self.keys.remove(id);
        Ok(())
    }
    fn access_keys(&self) -> Result<Vec<(String, keys::AccessKey)>, Self::Error> {
        Ok(self
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn setting(&self, bucket: &str, name: &str) -> Result<Option<access::Setting>, Self::Error> {
        Ok(self.settings.get(&pair(bucket, name)).cloned())
    }
    fn put_setting(
        &mut self,
        bucket: &str,
        name: &str,
        setting: &access::Setting,
    ) -> Result<(), Self::Error> {
        self.settings.insert(pair(bucket, name), setting.clone());
        Ok(())
    }
    fn remove_setting(&mut self, bucket: &str, name: &str) -> Result<(), Self::Error> {
        self.settings.remove(&pair(bucket, name));
        Ok(())
    }
    fn settings(&self, bucket: &str) -> Result<Vec<(String, access::Setting)>, Self::Error> {
        Ok(self
            .settings
            .range(pair(bucket, "")..)
            .take_while(|((b, _), _)| b == bucket)
            .map(|((_, n), v)| (n.clone(), v.clone()))
            .collect())
    }
}

impl MetaState {
    /// Applies `command`, committed at log `index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> Applied {
        match apply(self, index, command) {
            Ok(applied) => applied,
            Err(never) => match never {},
        }
    }

    /// The objects of `bucket`, in key order (an ordered index, not a scan of all).
    pub fn objects_in<'a>(
        &'a self,
        bucket: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Stored)> + 'a {
        let start = (bucket.to_string(), String::new());
        self.objects
            .range(start..)
            .take_while(move |((b, _), _)| b == bucket)
            .map(|((_, k), v)| (k.as_str(), v))
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<&Stored> {
        self.objects.get(&pair(bucket, key))
    }
}

// No message limit here: the state can be large. The wire limits apply where bytes
// come from peers (`wire::MESSAGE_BYTES_MAX`).

pub fn encode_command(c: &Command) -> Vec<u8> {
    encode(c)
}

pub fn decode_command(b: &[u8]) -> Option<Command> {
    decode(b)
}

pub fn encode_state(s: &MetaState) -> Vec<u8> {
    encode(s)
}

pub fn decode_state(b: &[u8]) -> Option<MetaState> {
    decode(b)
}
