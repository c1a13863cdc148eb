"""Tiny real media files, made here (no encoder on the machine): a browser tells a file's format
by its bytes, so a player test needs bytes it can parse, not a name.

- :func:`ogg_opus`: a Telegram voice note's format, OGG Opus (RFC 7845), of silent frames;
- :func:`mp4_h264`: a Telegram video's, MP4 (ISO/IEC 14496-12) with one H.264 frame, a 16x16
  grey I_PCM picture (ITU-T H.264 7.3: the samples are raw bytes, no transform to get right);
- :func:`sticker_webm` and :func:`sticker_webp`: a Telegram video sticker's format (WebM, VP9)
  and a still sticker's (WebP), 512 pixels square, made by Chromium's own encoders (a canvas
  and MediaRecorder): a VP9 or VP8 frame by hand needs the codec's probability tables.
"""

from __future__ import annotations

import base64
import struct

from playwright.async_api import Browser

STICKER_SIDE = 512
"""Telegram's stickers are 512 pixels on their longer side (https://core.telegram.org/stickers)."""

# --------------------------------------------------------------------------- OGG Opus


def _ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, no final xor (RFC 3533 6)."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_page(packets: list[bytes], *, granule: int, sequence: int, flags: int) -> bytes:
    lacing = b""
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 1, sequence, 0, len(lacing))
    page = header + lacing + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def ogg_opus(frames: int = 50) -> bytes:
    """``frames`` 20 ms frames of silence (mono, CELT full band: TOC 0xF8, then 0xFF 0xFE)."""
    pre_skip = 312
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    audio = [b"\xf8\xff\xfe"] * frames
    return (
        _ogg_page([head], granule=0, sequence=0, flags=0x02)
        + _ogg_page([tags], granule=0, sequence=1, flags=0)
        + _ogg_page(audio, granule=pre_skip + 960 * frames, sequence=2, flags=0x04)
    )


# --------------------------------------------------------------------------- MP4 H.264


class _Bits:
    """An H.264 RBSP written bit by bit: fixed-width fields and Exp-Golomb codes (9.1)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, width: int, value: int) -> None:
        self.bits += [(value >> i) & 1 for i in reversed(range(width))]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align(self) -> None:
        while len(self.bits) % 8:
            self.bits.append(0)

    def trailing(self) -> bytes:
        """The RBSP with its stop bit, emulation prevention bytes inserted (7.4.1)."""
        self.bits.append(1)
        self.align()
        out = bytearray()
        for i in range(0, len(self.bits), 8):
            byte = int("".join(map(str, self.bits[i : i + 8])), 2)
            if len(out) >= 2 and out[-2:] == b"\x00\x00" and byte <= 3:
                out.append(3)
            out.append(byte)
        return bytes(out)


def _sps() -> bytes:
    b = _Bits()
    b.u(8, 66)  # profile_idc: Baseline
    b.u(8, 0xC0)  # constraint_set0/1 flags
    b.u(8, 10)  # level_idc 1.0
    b.ue(0)  # seq_parameter_set_id
    b.ue(0)  # log2_max_frame_num_minus4
    b.ue(2)  # pic_order_cnt_type
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    b.ue(0)  # pic_width_in_mbs_minus1: 16 px
    b.ue(0)  # pic_height_in_map_units_minus1: 16 px
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    b.u(1, 0)  # frame_cropping_flag
    b.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + b.trailing()


def _pps() -> bytes:
    b = _Bits()
    b.ue(0)  # pic_parameter_set_id
    b.ue(0)  # seq_parameter_set_id
    b.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    b.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    b.ue(0)  # num_slice_groups_minus1
    b.ue(0)  # num_ref_idx_l0_default_active_minus1
    b.ue(0)  # num_ref_idx_l1_default_active_minus1
    b.u(1, 0)  # weighted_pred_flag
    b.u(2, 0)  # weighted_bipred_idc
    b.se(0)  # pic_init_qp_minus26
    b.se(0)  # pic_init_qs_minus26
    b.se(0)  # chroma_qp_index_offset
    b.u(1, 1)  # deblocking_filter_control_present_flag
    b.u(1, 0)  # constrained_intra_pred_flag
    b.u(1, 0)  # redundant_pic_cnt_present_flag
    return b"\x68" + b.trailing()


def _idr() -> bytes:
    b = _Bits()
    b.ue(0)  # first_mb_in_slice
    b.ue(7)  # slice_type: I (all slices)
    b.ue(0)  # pic_parameter_set_id
    b.u(4, 0)  # frame_num
    b.ue(0)  # idr_pic_id
    b.u(1, 0)  # no_output_of_prior_pics_flag
    b.u(1, 0)  # long_term_reference_flag
    b.se(0)  # slice_qp_delta
    b.ue(1)  # disable_deblocking_filter_idc
    b.ue(25)  # mb_type: I_PCM
    b.align()  # pcm_alignment_zero_bit
    b.u(8 * 384, int.from_bytes(b"\x80" * 384))  # 256 luma and 2 x 64 chroma samples: grey
    return b"\x65" + b.trailing()


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full(kind: bytes, version_flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags), *payload)


def mp4_h264() -> bytes:
    """One 16x16 frame lasting a second (timescale 1000)."""
    sps, pps, idr = _sps(), _pps(), _idr()
    sample = struct.pack(">I", len(idr)) + idr
    avcc = _box(
        b"avcC",
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),
        struct.pack(">H", len(sps)) + sps,
        bytes([1]) + struct.pack(">H", len(pps)) + pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6) + struct.pack(">H", 1),  # reserved, data_reference_index
        bytes(16),
        struct.pack(">HHIIIH", 16, 16, 0x00480000, 0x00480000, 0, 1),
        bytes(32),  # compressor name
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    mdat_payload_offset = len(ftyp) + 8
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, struct.pack(">I", 1), avc1),
        _full(b"stts", 0, struct.pack(">III", 1, 1, 1000)),
        _full(b"stss", 0, struct.pack(">II", 1, 1)),
        _full(b"stsc", 0, struct.pack(">IIII", 1, 1, 1, 1)),
        _full(b"stsz", 0, struct.pack(">III", 0, 1, len(sample))),
        _full(b"stco", 0, struct.pack(">II", 1, mdat_payload_offset)),
    )
    minf = _box(
        b"minf",
        _full(b"vmhd", 1, bytes(8)),
        _box(b"dinf", _full(b"dref", 0, struct.pack(">I", 1), _full(b"url ", 1))),
        stbl,
    )
    mdia = _box(
        b"mdia",
        _full(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, 1000, 1000, 0x55C4, 0)),
        _full(b"hdlr", 0, bytes(4), b"vide", bytes(12), b"video\x00"),
        minf,
    )
    tkhd = _full(
        b"tkhd",
        3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, 1000),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0),
        matrix,
        struct.pack(">II", 16 << 16, 16 << 16),
    )
    mvhd = _full(
        b"mvhd",
        0,
        struct.pack(">IIII", 0, 0, 1000, 1000),
        struct.pack(">IH", 0x10000, 0x100),
        bytes(10),
        matrix,
        bytes(24),
        struct.pack(">I", 2),
    )
    moov = _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))
    return ftyp + _box(b"mdat", sample) + moov


# --------------------------------------------------------------------------- Stickers

_CANVAS = f"""
const canvas = document.createElement("canvas");
canvas.width = canvas.height = {STICKER_SIDE};
const paint = (n) => {{
  const g = canvas.getContext("2d");
  g.fillStyle = `hsl(${{n * 40}}, 80%, 50%)`;
  g.fillRect(0, 0, canvas.width, canvas.height);
}};
"""
_WEBM = (
    "async () => {"
    + _CANVAS
    + """
  paint(0);
  const recorder = new MediaRecorder(canvas.captureStream(25), {
    mimeType: "video/webm;codecs=vp9",
  });
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  for (let n = 1; n <= 8; n++) {
    await new Promise((resolve) => setTimeout(resolve, 60));
    paint(n);
  }
  recorder.stop();
  await stopped;
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}"""
)
_WEBP = "() => {" + _CANVAS + 'paint(3); return canvas.toDataURL("image/webp").split(",")[1]; }'


async def sticker_webm(browser: Browser) -> bytes:
    """Half a second of a square changing colour: WebM with VP9, as Telegram's video stickers."""
    return await _made_in_page(browser, _WEBM)


async def sticker_webp(browser: Browser) -> bytes:
    """One square of colour as WebP, as Telegram's still stickers."""
    return await _made_in_page(browser, _WEBP)


async def _made_in_page(browser: Browser, script: str) -> bytes:
    """The bytes ``script`` returns as base64, run in a blank page of ``browser``."""
    page = await browser.new_page()
    try:
        return base64.b64decode(await page.evaluate(script))
    finally:
        await page.close()
