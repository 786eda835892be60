"""The arm64 Linux kernel's virtual memory map (arch/arm64/include/asm/memory.h, Linux 6.x), from
values read at run time, and its own virt_to_phys()/__pa_symbol() formulas. Pure: no GDB."""

from gdb_rkvm.arch.fields import MASK64
from dataclasses import dataclass, field

SZ_8M, SZ_16M, SZ_1G, SZ_2G = 8 << 20, 16 << 20, 1 << 30, 2 << 30


def _neg(x: int) -> int:
    return (-x) & MASK64


@dataclass
class KernelLayout:
    """What the kernel's memory map macros evaluate to on this boot.

    page_offset comes from the kernel itself (high_memory and the end of RAM), so it is right for
    52-bit configurations on 48-bit hardware too; va_bits_in_use comes from TCR_EL1.T1SZ.
    """

    page_offset: int
    phys_offset: int        # memstart_addr
    kimage_voffset: int
    kernel_start: int       # _text
    kernel_end: int         # _end
    va_bits_in_use: int
    page_shift: int = 12
    struct_page_size: int = 64
    # Where this boot allocates modules (6.x arm64: module_direct_base + 128M, module_plt_base + 2G,
    # near the kernel image, which KASLR moves); empty means the static MODULES_VADDR window.
    module_ranges: list = field(default_factory=list)

    @property
    def config_va_bits(self) -> int:
        return _neg(self.page_offset).bit_length() - 1

    @property
    def va_bits_min(self) -> int:
        """VA_BITS_MIN: 48 (47 for 16K pages) when the kernel is built for 52-bit VAs, else VA_BITS."""
        if self.config_va_bits > 48:
            return 47 if self.page_shift == 14 else 48
        return self.config_va_bits

    @property
    def page_end(self) -> int:
        return _neg(1 << (self.va_bits_min - 1))

    @property
    def modules_vaddr(self) -> int:
        return self.page_end

    @property
    def modules_end(self) -> int:
        return self.modules_vaddr + SZ_2G

    @property
    def vmalloc_start(self) -> int:
        return self.modules_end

    @property
    def vmemmap_end(self) -> int:
        return _neg(SZ_1G)

    @property
    def vmemmap_start(self) -> int:
        size = ((self.page_end - self.page_offset) >> self.page_shift) * self.struct_page_size
        return self.vmemmap_end - size

    @property
    def vmalloc_end(self) -> int:
        # VA_BITS > VA_BITS_MIN adds unused vmemmap pages; the difference is outside 48-bit hardware anyway
        return self.vmemmap_start - SZ_8M

    @property
    def pci_io_start(self) -> int:
        return self.vmemmap_end + SZ_8M

    @property
    def fixaddr_top(self) -> int:
        return _neg(SZ_8M)

    def regions(self) -> list[tuple[str, int, int]]:
        """(name, start, end) of each region, kernel image before the vmalloc area that holds it."""
        modules = [("modules", s, e) for s, e in self.module_ranges] or \
            [("modules", self.modules_vaddr, self.modules_end)]
        return [
            ("linear map", self.page_offset, self.page_end),
            ("kernel image", self.kernel_start, self.kernel_end),
            *modules,
            ("vmalloc", self.vmalloc_start, self.vmalloc_end),
            ("vmemmap", self.vmemmap_start, self.vmemmap_end),
            ("PCI I/O", self.pci_io_start, self.pci_io_start + SZ_16M),
            ("fixmap", self.pci_io_start + SZ_16M, self.fixaddr_top),
        ]

    def region(self, va: int) -> str:
        """Which region `va` lies in ('user (TTBR0)' below the kernel half, 'unused' in the holes)."""
        va &= MASK64
        if not va >> 63:
            return "user (TTBR0)"
        for name, start, end in self.regions():
            if start <= va < end:
                return name
        return "unused"

    def is_linear(self, va: int) -> bool:
        """__is_lm_address(): (va - PAGE_OFFSET) < (PAGE_END - PAGE_OFFSET), unsigned."""
        return ((va - self.page_offset) & MASK64) < ((self.page_end - self.page_offset) & MASK64)

    def virt_to_phys(self, va: int) -> int:
        """The kernel's virt_to_phys(): linear map addresses by PAGE_OFFSET/PHYS_OFFSET, everything
        else as if it were in the kernel image (va - kimage_voffset) — which is wrong for vmalloc and
        module addresses, and the kernel does not warn (without CONFIG_DEBUG_VIRTUAL)."""
        va &= MASK64
        if self.is_linear(va):
            return (va - self.page_offset + self.phys_offset) & MASK64
        return (va - self.kimage_voffset) & MASK64

    def pa_symbol(self, va: int) -> int:
        """__pa_symbol(): kernel image addresses only."""
        return (va - self.kimage_voffset) & MASK64

    def phys_to_virt(self, pa: int) -> int:
        """__phys_to_virt(): the linear-map alias of a physical address."""
        return ((pa - self.phys_offset) | self.page_offset) & MASK64

    def to_dict(self) -> dict:
        return {"va_bits_in_use": self.va_bits_in_use, "config_va_bits": self.config_va_bits,
                "page_offset": self.page_offset, "page_end": self.page_end, "phys_offset": self.phys_offset,
                "kimage_voffset": self.kimage_voffset, "kernel_image": [self.kernel_start, self.kernel_end],
                "module_ranges": self.module_ranges,
                "regions": [{"name": n, "start": s, "end": e} for n, s, e in self.regions()]}


def page_offset_from(high_memory: int, dram_end: int, phys_offset: int) -> int:
    """PAGE_OFFSET from the kernel's own numbers: high_memory = __va(end of DRAM)."""
    return (high_memory - (dram_end - phys_offset)) & MASK64


# The arm64 Image header (Documentation/arch/arm64/booting.rst): code0, code1, text_offset,
# image_size, flags, res2-4, magic "ARM\x64" at 0x38, res5.
IMAGE_MAGIC = 0x644D5241
IMAGE_HEADER_SIZE = 0x40


@dataclass
class ImageHeader:
    text_offset: int
    image_size: int
    flags: int


def parse_image_header(data: bytes) -> ImageHeader | None:
    """The header of an arm64 kernel Image at the start of `data`, or None if the magic is not there."""
    if len(data) < IMAGE_HEADER_SIZE or int.from_bytes(data[0x38:0x3C], "little") != IMAGE_MAGIC:
        return None
    return ImageHeader(int.from_bytes(data[0x08:0x10], "little"), int.from_bytes(data[0x10:0x18], "little"),
                       int.from_bytes(data[0x18:0x20], "little"))


def image_base_candidates(ram_start: int, count: int = 64) -> list[int]:
    """Where a boot loader puts an Image: a 2 MiB-aligned address in the first part of RAM (booting.rst
    asks for 2 MiB alignment + text_offset, text_offset being 0 since Linux 5.8), or the old fixed
    0x80000 offset."""
    return [ram_start + k * (2 << 20) for k in range(count)] + [ram_start + 0x80000]
