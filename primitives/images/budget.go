package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// ImageSizeEnv sets, in MB, the most the layers one `image load` or
// `image pull` unpacks may come to: what an archive or a registry sends
// is compressed, and 19 MB of gzip unpack to 4 GiB of zeros. The
// compressed blobs one image fetches into the layout come to at most as
// much again, counted apart: a manifest may give a layer any size.
const ImageSizeEnv = "STEPBOX_IMAGE_MB"

// ImageEntriesEnv sets the most tar entries (files, directories, links,
// whiteouts: an inode each once unpacked) the layers of one image may
// hold: a layer of a million empty files is 512 MB of tar headers, under
// the byte bound, and takes a million inodes of the state dir's
// filesystem.
const ImageEntriesEnv = "STEPBOX_IMAGE_ENTRIES"

// imageCap is the most one image unpacks to unless ImageSizeEnv says
// otherwise, and imageFreeShare the part of the layer store's free space
// (and free inodes) it may take; storeReserve and storeReservePercent
// are what unpacking leaves free on that filesystem (the smaller of the
// two: 5% of a small disk is less than 512 MiB), whatever the bound:
// /var/lib/stepbox is on the host's root filesystem, with /var/log and
// the rest. imageEntriesCap is the most entries one image unpacks unless
// ImageEntriesEnv says otherwise: the largest images people pull (CUDA
// and TeX Live ones) hold a few hundred thousand; storeInodeReserve is
// the most inodes of the reserve.
const (
	imageCap            = 4 << 30
	imageEntriesCap     = 1_000_000
	imageFreeShare      = 2
	storeReserve        = 512 << 20
	storeInodeReserve   = 1 << 16
	storeReservePercent = 5
	// statfsEvery is how many bytes, and statfsEntries how many
	// entries, are unpacked between two looks at the free space.
	statfsEvery   = 1 << 20
	statfsEntries = 1 << 10
)

// ErrImageTooLarge is returned for an image whose layers unpack to more
// than the bound, hold more entries than theirs, or whose blobs come to
// more than the bound compressed; ErrStoreFull for one that would leave
// the layer store's filesystem with less than its reserve free.
var (
	ErrImageTooLarge = errors.New("image too large")
	ErrStoreFull     = errors.New("the layer store's filesystem is nearly full")
)

// budget is what the layers one image unpacks may still take: the bytes
// of their tars uncompressed (file data, and a header per entry), their
// entries, and the free space and inodes of dir's filesystem. A budget
// of compressed bytes counts the blobs fetched into the layout instead.
type budget struct {
	bound   int64
	why     string // where bound comes from
	used    int64
	dir     string
	checked int64 // used at the last look at the free space
	// entryBound is the most entries the layers may hold; entryWhy says
	// where it comes from, entriesChecked is entries at the last look at
	// the free inodes.
	entryBound, entries, entriesChecked int64
	entryWhy                            string
	// compressed: the bytes counted are blobs as a registry or an
	// archive sends them, fetched into the layout at dir.
	compressed bool
	// space is the free space of dir's filesystem and the reserve
	// unpacking leaves there, inodes the same of its inodes (free < 0:
	// a filesystem that does not count them); a test replaces them. nil:
	// the budget of the reads that check the layers' digests, which
	// write nothing.
	space  func(dir string) (free, reserve int64, err error)
	inodes func(dir string) (free, reserve int64, err error)
}

// checking is a budget of b's bounds, fresh, for the reads that check
// each layer's digest before any is unpacked.
func (b *budget) checking() *budget {
	return &budget{bound: b.bound, why: b.why, dir: b.dir, entryBound: b.entryBound, entryWhy: b.entryWhy}
}

// fetching is a budget of b's byte bound, fresh, for the compressed
// blobs fetched into the layout at dir, which check the free space there
// as b does; claim, that of the sizes the manifest gives them, counted
// before any is fetched.
func (b *budget) fetching(dir string) (fetch, claim *budget) {
	fetch = &budget{bound: b.bound, why: b.why, dir: dir, compressed: true, space: b.space}
	return fetch, &budget{bound: b.bound, why: b.why, dir: dir, compressed: true}
}

// newBudget is the budget of one image unpacked into the layer store at
// dir: ImageSizeEnv, or imageCap and at most 1/imageFreeShare of what
// dir's filesystem has free; ImageEntriesEnv, or imageEntriesCap and at
// most 1/imageFreeShare of its free inodes.
func newBudget(dir string) (*budget, error) {
	b := &budget{dir: dir, space: storeSpace, inodes: storeInodes}
	if v := os.Getenv(ImageSizeEnv); v != "" {
		mb, err := strconv.ParseInt(v, 10, 64)
		if err != nil || mb < 1 || mb > 1<<40 {
			return nil, fmt.Errorf("$%s=%q: give a whole number of MB, 1 or more", ImageSizeEnv, step.Cut(v))
		}
		b.bound, b.why = mb<<20, "$"+ImageSizeEnv
	} else {
		b.bound, b.why = imageCap, fmt.Sprintf("at most %d MB", imageCap>>20)
		if free, _, err := storeSpace(dir); err == nil && free/imageFreeShare < imageCap {
			b.bound = free / imageFreeShare
			b.why = fmt.Sprintf("1/%d of the %d MB the layer store's filesystem had free", imageFreeShare, free>>20)
		}
		b.why += "; $" + ImageSizeEnv + " sets it"
	}
	if v := os.Getenv(ImageEntriesEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 1<<40 {
			return nil, fmt.Errorf("$%s=%q: give a whole number of entries, 1 or more", ImageEntriesEnv, step.Cut(v))
		}
		b.entryBound, b.entryWhy = n, "$"+ImageEntriesEnv
		return b, nil
	}
	b.entryBound, b.entryWhy = imageEntriesCap, fmt.Sprintf("at most %d", imageEntriesCap)
	if free, _, err := storeInodes(dir); err == nil && free >= 0 && free/imageFreeShare < imageEntriesCap {
		b.entryBound = free / imageFreeShare
		b.entryWhy = fmt.Sprintf("1/%d of the %d inodes the layer store's filesystem had free", imageFreeShare, free)
	}
	b.entryWhy += "; $" + ImageEntriesEnv + " sets it"
	return b, nil
}

// storeSpace is what dir's filesystem has free for stepbox, and what
// unpacking leaves there: storeReservePercent of its size, at most
// storeReserve.
func storeSpace(dir string) (free, reserve int64, err error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return 0, 0, fmt.Errorf("statfs(%s): %w", dir, err)
	}
	size := int64(sfs.Blocks) * sfs.Bsize
	return int64(sfs.Bavail) * sfs.Bsize, min(size*storeReservePercent/100, storeReserve), nil
}

// storeInodes is how many inodes dir's filesystem has free, and how many
// unpacking leaves there: storeReservePercent of them, at most
// storeInodeReserve. free is -1 where the filesystem has no fixed number
// of inodes (btrfs says 0 of 0).
func storeInodes(dir string) (free, reserve int64, err error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return 0, 0, fmt.Errorf("statfs(%s): %w", dir, err)
	}
	if sfs.Files == 0 {
		return -1, 0, nil
	}
	return int64(sfs.Ffree), min(int64(sfs.Files)*storeReservePercent/100, storeInodeReserve), nil
}

// reader counts what is read from r, a layer's uncompressed tar (or a
// blob, for a budget of compressed bytes), against the budget: the read
// that would pass the bound, or come within the reserve of filling the
// filesystem, fails instead, and the unpack or fetch stops there.
func (b *budget) reader(r io.Reader) io.Reader { return &budgetReader{b: b, r: r} }

type budgetReader struct {
	b *budget
	r io.Reader
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n == 0 {
		return n, err
	}
	if cerr := br.b.take(int64(n)); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// verbs are what the budget's bytes go through: "unpack", "unpacking"
// and "unpacked", or "fetch"… for compressed ones.
func (b *budget) verbs() (verb, doing, done string) {
	if b.compressed {
		return "fetch", "fetching", "fetched"
	}
	return "unpack", "unpacking", "unpacked"
}

// stopped says how far a refused image got, so many (of unit), and
// that it is gone.
func (b *budget) stopped(so string) string {
	_, _, done := b.verbs()
	if b.space == nil {
		return "refused before any of it was " + done
	}
	return fmt.Sprintf("stopped after %s, and what it %s is removed", so, done)
}

func (b *budget) mb() string { return fmt.Sprintf("%.1f MB", float64(b.used)/(1<<20)) }

// take counts n more bytes, or says why they may not be unpacked (or
// fetched).
func (b *budget) take(n int64) error {
	verb, doing, _ := b.verbs()
	what := "uncompressed"
	if b.compressed {
		what = "compressed"
	}
	if n < 0 || b.used+n > b.bound {
		return fmt.Errorf("%w: its layers come to more than %d MB %s, the most one image may %s (%s); %s",
			ErrImageTooLarge, b.bound>>20, what, verb, b.why, b.stopped(b.mb()))
	}
	b.used += n
	if b.space == nil {
		return nil
	}
	if b.used-b.checked < statfsEvery && b.checked != 0 {
		return nil
	}
	b.checked = b.used
	free, reserve, err := b.space(b.dir)
	if err != nil {
		return nil // where statfs fails, the bound alone stands
	}
	if free-n < reserve {
		return fmt.Errorf("%w: %s has %d MB free, and %s stops before less than %d MB are left (%d%% of its size, at most %d MB); %s",
			ErrStoreFull, b.dir, free>>20, doing, reserve>>20, storeReservePercent, storeReserve>>20, b.stopped(b.mb()))
	}
	return nil
}

// takeEntry counts one more tar entry, or says why it may not be
// unpacked: past the bound, or within the reserve of the filesystem's
// free inodes.
func (b *budget) takeEntry() error {
	if b.entries >= b.entryBound {
		return fmt.Errorf("%w: its layers hold more than %d entries (files, directories, links, whiteouts: an inode each), the most one image may unpack (%s); %s",
			ErrImageTooLarge, b.entryBound, b.entryWhy, b.stopped(fmt.Sprintf("%d entries", b.entries)))
	}
	b.entries++
	if b.inodes == nil || (b.entries-b.entriesChecked < statfsEntries && b.entriesChecked != 0) {
		return nil
	}
	b.entriesChecked = b.entries
	free, reserve, err := b.inodes(b.dir)
	if err != nil || free < 0 {
		return nil // where statfs fails or inodes are not counted, the bound alone stands
	}
	if free-1 < reserve {
		return fmt.Errorf("%w: %s has %d inodes free, and unpacking stops before less than %d are left (%d%% of its inodes, at most %d); %s",
			ErrStoreFull, b.dir, free, reserve, storeReservePercent, storeInodeReserve, b.stopped(fmt.Sprintf("%d entries", b.entries)))
	}
	return nil
}

// countEntries reads the tar r to its end, counting each entry against
// b. What is no tar is left for the unpack to refuse: the caller reads
// the rest, to check its digest first.
func (b *budget) countEntries(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, ErrImageTooLarge) || errors.Is(err, ErrStoreFull) {
				return err
			}
			return nil
		}
		if err := b.takeEntry(); err != nil {
			return err
		}
	}
}
