"""Training batches streamed from Shar shards (spkid make-shards), split across DDP ranks and workers.

Reading order. Each epoch the shards are permuted (seed, epoch) and dealt round-robin to the
`ranks x workers` reading slots, so every utterance is read exactly once per epoch, by one slot. A
slot reads its shards in order, in blocks of `block` utterances shuffled within the block: the reads
stay sequential within a shard region while batches mix utterances of several shards.

Everything about the order is a function of the cut manifests (ids, speakers), never of the audio:
the audio of an utterance is fetched from its tar by offset (a member index built from the tar
headers). So a run resumed at step S rebuilds exactly where each slot was (which shard, which
utterance) from the manifests alone and continues there: resume is exact to the batch, with no
audio read twice.

Batches: `classification` takes the next `batch_size` utterances of the slot's stream; `speakers`
(GE2E, triplets) keeps a per-slot speaker buffer filled in stream order and emits N speakers x M
utterances as soon as N speakers hold M utterances each (speakers with the most waiting first).
"""
from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from spkid.data.shards import SHAR, SUMMARY, shard_files
from spkid.errors import SpkidError

logger = logging.getLogger("spkid.train")


class Item(NamedTuple):
    """One utterance of the stream: its shard, its position in that shard, its speaker index."""

    shard: int
    pos: int
    speaker: int


class ShardIndex:
    """What the cut manifests of a shard folder say: speakers per shard, as compact arrays (ids stay on disk)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        summary = self.folder / SUMMARY
        if not summary.exists():
            raise SpkidError(f"{self.folder}: no {SUMMARY} (not written by spkid make-shards, or not finished)")
        self.num_shards = _num_shards(summary)
        per_shard = [[spk for _, spk in self._manifest(i)] for i in range(self.num_shards)]
        self.speakers = sorted({spk for rows in per_shard for spk in rows})
        spk_index = {s: k for k, s in enumerate(self.speakers)}
        self.shard_speakers = [np.array([spk_index[s] for s in rows], dtype=np.int32) for rows in per_shard]
        self.num_utterances = sum(len(rows) for rows in per_shard)
        if not self.num_utterances:
            raise SpkidError(f"{self.folder}: the shards hold no utterance")

    def _manifest(self, shard: int) -> list[tuple[str, str]]:
        return read_manifest(shard_files(self.folder / SHAR, shard)[0])

    def utt_ids(self, shard: int) -> list[str]:
        """The utterance ids of one shard, in order (read from its manifest)."""
        return [utt for utt, _ in self._manifest(shard)]

    def epoch_order(self, epoch: int, seed: int) -> list[int]:
        """Shard indices of one epoch, permuted by (seed, epoch)."""
        return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(self.num_shards)]


def _num_shards(summary: Path) -> int:
    """`num_shards` of a shards.json: a whole number >= 0, else one line naming the file."""
    try:
        count = json.loads(summary.read_text()).get("num_shards")
    except OSError as err:
        raise SpkidError(f"{summary}: cannot read it ({err.strerror or err})") from None
    except (ValueError, AttributeError):
        raise SpkidError(f"{summary}: not a JSON object (write the shards again with spkid make-shards)") from None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SpkidError(f"{summary}: 'num_shards' must be a whole number >= 0, got {json.dumps(count)}")
    return count


def slot_stream(index: ShardIndex, slot: int, num_slots: int, seed: int, block: int) -> Iterator[tuple[int, Item]]:
    """The endless (epoch, item) stream of one reading slot: its shards of each epoch, block-shuffled."""
    if index.num_shards < num_slots:
        raise SpkidError(f"{index.folder}: {index.num_shards} shard(s) for {num_slots} reading slots (ranks x "
                         f"data.num_workers): every slot needs a shard; write smaller shards or use fewer workers")
    epoch = 0
    while True:
        mine = index.epoch_order(epoch, seed)[slot::num_slots]
        shard = np.concatenate([np.full(len(index.shard_speakers[i]), i, np.int32) for i in mine])
        pos = np.concatenate([np.arange(len(index.shard_speakers[i]), dtype=np.int32) for i in mine])
        for start in range(0, len(shard), block):
            size = min(block, len(shard) - start)
            for k in start + np.random.default_rng([seed, epoch, slot, start]).permutation(size):
                i, p = int(shard[k]), int(pos[k])
                yield epoch, Item(i, p, int(index.shard_speakers[i][p]))
        epoch += 1


class Member(NamedTuple):
    """An audio member of a shard tar: the utterance its name says, where its data is, whether a plain file."""

    utt: str
    offset: int
    size: int
    regular: bool


@lru_cache(maxsize=4)
def _open_shard(tar_path: str, cuts_path: str) -> tuple[io.BufferedReader, list[Member], list[str]]:
    """An open shard tar, its audio members in order (headers only) and the utterance ids of its manifest.
    The few most recent stay open (a reader moves through its shards in order); evicted ones are closed
    by garbage collection."""
    try:
        handle = open(tar_path, "rb")  # noqa: SIM115 -- cached, reused for every read of this shard
        with tarfile.open(fileobj=handle) as tar:
            members = [Member(m.name.rsplit(".", 1)[0], m.offset_data, m.size, m.isfile())
                       for m in tar.getmembers() if not m.name.endswith(".json")]
    except OSError as err:
        raise SpkidError(f"{tar_path}: cannot read the shard ({err.strerror or err})") from None
    except tarfile.TarError as err:
        raise SpkidError(f"{tar_path}: not a readable tar ({err})") from None
    return handle, members, read_manifest_ids(Path(cuts_path))


def read_manifest_ids(cuts: Path) -> list[str]:
    """The utterance ids of a shard's cut manifest, in order; a broken manifest is one line naming it."""
    return [utt for utt, _ in read_manifest(cuts)]


def read_manifest(cuts: Path) -> list[tuple[str, str]]:
    """(utterance id, speaker) of each cut of a shard manifest, in order."""
    try:
        with gzip.open(cuts, "rt") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        return [(str(row["id"]), str(row["supervisions"][0]["speaker"])) for row in rows]
    except (ValueError, EOFError, gzip.BadGzipFile) as err:
        raise SpkidError(f"{cuts}: not a gzipped JSON-lines cut manifest ({err})") from None
    except OSError as err:
        raise SpkidError(f"{cuts}: cannot read the shard manifest ({err.strerror or err})") from None
    except (KeyError, IndexError, TypeError):
        raise SpkidError(f"{cuts}: a cut lacks its id or its supervision's speaker") from None


def _error_text(err: Exception) -> str:
    try:
        return str(err) or type(err).__name__
    except Exception:  # noqa: BLE001 -- soundfile's LibsndfileError can fail to format itself
        return type(err).__name__


def read_audio_member(folder: Path, item: Item) -> tuple[str, np.ndarray, int]:
    """(utterance id, mono float32 audio in [-1, 1), rate) of one item, read from its shard tar by offset.
    The member must be the utterance its manifest names at that position, a plain file of decodable audio."""
    import soundfile as sf

    cuts, tar_path = shard_files(folder / SHAR, item.shard)
    handle, members, ids = _open_shard(str(tar_path), str(cuts))
    if item.pos >= len(ids):
        raise SpkidError(f"{cuts}: {len(ids)} utterances, but the index asks for number {item.pos + 1}")
    utt = ids[item.pos]
    if item.pos >= len(members):
        raise SpkidError(f"utterance {utt} (shard {item.shard}): {tar_path} has {len(members)} audio members, but "
                         f"its manifest lists {len(ids)} utterances")
    member = members[item.pos]
    if member.utt != utt:
        raise SpkidError(f"utterance {utt} (shard {item.shard}): audio member {item.pos + 1} of {tar_path} is "
                         f"'{member.utt}' (the tar and its manifest disagree; write the shards again)")
    if not member.regular:
        raise SpkidError(f"utterance {utt} (shard {item.shard}): its member in {tar_path} is not a plain file "
                         "(a link?)")
    handle.seek(member.offset)
    try:
        data, rate = sf.read(io.BytesIO(handle.read(member.size)), dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 -- whatever the decoder says, the utterance and shard are named
        raise SpkidError(f"utterance {utt} (shard {item.shard}): cannot decode its audio in {tar_path} "
                         f"({_error_text(err)})") from None
    if not data.shape[0] or not data.shape[1]:
        raise SpkidError(f"utterance {utt} (shard {item.shard}): its audio in {tar_path} has no samples")
    return utt, data[:, 0], int(rate)


def speaker_groups(stream: Iterator[tuple[int, Item]], num_speakers: int, per_speaker: int
                   ) -> Iterator[list[Item]]:
    """N x M groups from a stream through a speaker buffer (speakers with most utterances waiting first).
    A whole epoch of the stream without a group is an error (the slot's shards hold too few speakers)."""
    waiting: dict[int, list[Item]] = {}
    last = 0  # the epoch of the last group (or of the start)
    for epoch, item in stream:
        if epoch > last + 1:
            raise SpkidError(f"a reading slot read a whole epoch without {num_speakers} speakers holding "
                             f"{per_speaker} utterance(s) each ({len(waiting)} speakers waiting): write smaller "
                             "shards, use fewer data.num_workers, or lower data.speakers_per_batch")
        waiting.setdefault(item.speaker, []).append(item)
        ready = [s for s, items in waiting.items() if len(items) >= per_speaker]
        if len(ready) >= num_speakers:
            ready.sort(key=lambda s: (-len(waiting[s]), s))
            group = []
            for s in ready[:num_speakers]:
                group += waiting[s][:per_speaker]
                waiting[s] = waiting[s][per_speaker:]
                if not waiting[s]:
                    del waiting[s]
            last = epoch
            yield group


def fixed_groups(stream: Iterator[tuple[int, Item]], size: int) -> Iterator[list[Item]]:
    """Consecutive groups of `size` items."""
    group: list[Item] = []
    for _, item in stream:
        group.append(item)
        if len(group) == size:
            yield group
            group = []


def batches_done_by_worker(start_step: int, worker: int, num_workers: int) -> int:
    """Batches a worker produced before `start_step`: a DataLoader takes them from workers round-robin."""
    return max(0, -(-(start_step - worker) // num_workers))


def _crop(feats: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of `length` frames; shorter utterances are tiled (repeat padding)."""
    if len(feats) < length:
        feats = np.tile(feats, (-(-length // len(feats)), 1))
    start = int(rng.integers(0, len(feats) - length + 1))
    return feats[start:start + length]


class ShardBatches(torch.utils.data.IterableDataset):
    """A torch IterableDataset of training batches `{"feats": (B, T, F), "speakers": (B,)}` from shards.

    `group` is ("fixed", batch_size) or ("speakers", N, M). Each DataLoader worker is one reading slot
    (slot = rank x num_workers + worker); `start_step` skips the batches already trained on.
    """

    def __init__(self, index: ShardIndex, frontend_config: dict, group: tuple, crop_frames: int, *, seed: int = 0,
                 block: int = 512, rank: int = 0, world_size: int = 1, start_step: int = 0,
                 with_ids: bool = False, augmentation=None):
        super().__init__()
        self.augmentation = augmentation  # spkid.data.augmentation.TrainAugmentation: the crops' audio and features
        self.with_ids = with_ids  # batches also carry "utts" (tests, debugging)
        self.index, self.frontend_config, self.group = index, dict(frontend_config), tuple(group)
        self.crop_frames, self.seed, self.block = int(crop_frames), int(seed), int(block)
        self.rank, self.world_size, self.start_step = int(rank), int(world_size), int(start_step)
        self.skipped, self.warned = 0, set()  # crops with no frames, replaced (counted per reader)

    def _stand_in(self, group: list[Item], raw: list, k: int, utt: str) -> int:
        """The crop that replaces item k of a group, which has no frames (too short, or no voiced frame):
        that of another utterance of the same speaker in the group (of any one in a fixed group)."""
        same = [j for j, item in enumerate(group) if raw[j] is not None and
                (self.group[0] == "fixed" or item.speaker == group[k].speaker)]
        if not same:
            raise SpkidError(f"utterance {utt} (shard {group[k].shard}): no frames after the front-end (too "
                             "short, or no voiced frame), nor in any other utterance of its speaker in the batch")
        self.skipped += 1
        if utt not in self.warned:  # once per utterance and reader; the count says how often
            self.warned.add(utt)
            logger.warning("utterance %s (shard %d): no frames after the front-end (too short, or no voiced "
                           "frame); skipped, another crop of the batch stands in (%d crop(s) skipped by this "
                           "reader)", utt, group[k].shard, self.skipped)
        return same[0]

    def groups(self, worker: int, num_workers: int) -> Iterator[list[Item]]:
        """The item groups (batches before features) of one worker, from its first batch on."""
        slot, num_slots = self.rank * num_workers + worker, self.world_size * num_workers
        stream = slot_stream(self.index, slot, num_slots, self.seed, self.block)
        if self.group[0] == "fixed":
            return fixed_groups(stream, int(self.group[1]))
        if self.group[0] == "speakers":
            return speaker_groups(stream, int(self.group[1]), int(self.group[2]))
        raise SpkidError(f"unknown shard batch grouping {self.group[0]!r}")

    def __iter__(self):
        import itertools

        from spkid.features.frontend import build_frontend
        from spkid.kaldi.audio import resample

        info = torch.utils.data.get_worker_info()
        loader_worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # the DataLoader takes batch j from worker j % W; global step g belongs to reader g % W, so after a
        # resume at step S, loader worker w plays reader (S + w) % W and the order is that of an unbroken run
        worker = (self.start_step + loader_worker) % num_workers
        frontend = build_frontend(self.frontend_config)
        skip = batches_done_by_worker(self.start_step, worker, num_workers)
        for number, group in enumerate(itertools.islice(self.groups(worker, num_workers), skip, None), skip):
            rng = np.random.default_rng([self.seed, self.rank, worker, number])
            utts, raw, labels, rngs = [], [], [], []  # raw: the crops before SpecAugment (None: no frames)
            for k, item in enumerate(group):
                utt, wave, rate = read_audio_member(self.index.folder, item)
                utts.append(utt)
                if rate != frontend.sample_rate:
                    wave = resample(wave, rate, frontend.sample_rate)
                label, crop_rng = item.speaker, None
                aug = self.augmentation
                if aug is not None:  # a generator per crop: (train.seed, rank, reader, batch number, position)
                    crop_rng = aug.rng((worker << 40) + (number << 12) + k)
                    block, factor = aug.draw_speed(crop_rng)
                    if factor != 1.0:
                        from spkid.augment.transforms import speed_perturb

                        wave = speed_perturb(wave, frontend.sample_rate, factor)
                    label += block * len(self.index.speakers) if aug.label_blocks > 1 else 0
                    wave = aug.augment_wave(wave, frontend.sample_rate, crop_rng)
                feats = np.asarray(frontend(wave), np.float32)
                raw.append(_crop(feats, self.crop_frames, rng) if len(feats) else None)
                labels.append(label)
                rngs.append(crop_rng)
            crops, speakers = [], []
            for k in range(len(group)):
                use = k if raw[k] is not None else self._stand_in(group, raw, k, utts[k])
                crops.append(aug.spec_augment(raw[use], rngs[k]) if aug is not None else raw[use])
                speakers.append(labels[use])
            batch = {"feats": torch.from_numpy(np.stack(crops)), "speakers": torch.tensor(speakers, dtype=torch.long)}
            if self.with_ids:
                batch["utts"] = utts
            yield batch


def make_shard_loader(dataset: ShardBatches, num_workers: int):
    """A DataLoader over ShardBatches: whole batches come from the workers, taken round-robin (in order)."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=num_workers,
                                       persistent_workers=num_workers > 0,
                                       prefetch_factor=4 if num_workers > 0 else None)


class ShardSource:
    """Training data from a shard folder (data.source: shar, or auto on a folder with shards.json): what
    the tasks need to know (speakers, feature dim) and the streamed batches in place of a sampler."""

    streamed = True

    def __init__(self, folder: str | Path, feature_config: dict, block: int = 512):
        from spkid.features.frontend import build_frontend

        self.index = ShardIndex(folder)
        self.feature_config = dict(feature_config)
        self.speakers = self.index.speakers
        self.dim = int(build_frontend(self.feature_config).dim)
        self.block = int(block)

    def check_speakers(self, num_speakers: int, per_speaker: int, num_slots: int, seed: int) -> None:
        """N x M batches need N speakers holding M utterances each (as the data-dir sampler checks), in the
        whole folder and in the shards every reading slot reads in the first epoch."""
        def enough(shards) -> int:
            rows = [self.index.shard_speakers[i] for i in shards]
            counts = np.bincount(np.concatenate(rows), minlength=len(self.speakers)) if rows else np.zeros(1)
            return int((counts >= per_speaker).sum())

        need = f"a batch needs {num_speakers} speakers x {per_speaker} utterance(s)"
        total = enough(range(self.index.num_shards))
        if total < num_speakers:
            raise SpkidError(f"{self.index.folder}: only {total} of {len(self.speakers)} speakers have "
                             f"{per_speaker} utterance(s); {need} (lower data.speakers_per_batch / "
                             "data.utterances_per_speaker)")
        order = self.index.epoch_order(0, seed)
        for slot in range(num_slots):
            mine = order[slot::num_slots]
            if (found := enough(mine)) < num_speakers:
                raise SpkidError(f"{self.index.folder}: reading slot {slot} of {num_slots} (ranks x "
                                 f"data.num_workers) reads {len(mine)} shard(s) an epoch, where only {found} "
                                 f"speakers have {per_speaker} utterance(s); {need} (write smaller shards, use "
                                 "fewer data.num_workers, or lower data.speakers_per_batch)")

    def loader(self, group: tuple, crop_frames: int, *, seed: int, rank: int, world_size: int, start_step: int,
               num_workers: int, augmentation=None):
        """The DataLoader of this rank's batches from `start_step` on (see ShardBatches)."""
        dataset = ShardBatches(self.index, self.feature_config, group, crop_frames, seed=seed, block=self.block,
                               rank=rank, world_size=world_size, start_step=start_step, augmentation=augmentation)
        workers = max(1, int(num_workers))  # a reading slot is a worker: at least one, so the order is the same
        if group[0] == "speakers":
            self.check_speakers(int(group[1]), int(group[2]), world_size * workers, seed)
        next(slot_stream(self.index, 0, world_size * workers, seed, self.block))  # too few shards: say so now
        return make_shard_loader(dataset, workers)
