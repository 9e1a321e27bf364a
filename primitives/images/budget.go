package images

import (
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
// is compressed, and 19 MB of gzip unpack to 4 GiB of zeros.
const ImageSizeEnv = "STEPBOX_IMAGE_MB"

// imageCap is the most one image unpacks to unless ImageSizeEnv says
// otherwise, and imageFreeShare the part of the layer store's free space
// it may take; storeReserve and storeReservePercent are what unpacking
// leaves free on that filesystem (the smaller of the two: 5% of a small
// disk is less than 512 MiB), whatever the bound: /var/lib/stepbox is
// on the host's root filesystem, with /var/log and the rest.
const (
	imageCap            = 4 << 30
	imageFreeShare      = 2
	storeReserve        = 512 << 20
	storeReservePercent = 5
	// statfsEvery is how many bytes are unpacked between two looks at
	// the free space.
	statfsEvery = 1 << 20
)

// ErrImageTooLarge is returned for an image whose layers unpack to more
// than the bound; ErrStoreFull for one that would leave the layer
// store's filesystem with less than its reserve free.
var (
	ErrImageTooLarge = errors.New("image too large")
	ErrStoreFull     = errors.New("the layer store's filesystem is nearly full")
)

// budget is what the layers one image unpacks may still take: the bytes
// of their tars uncompressed (file data, and a header per entry, so a
// million empty files count too), and the free space of dir's filesystem.
type budget struct {
	bound   int64
	why     string // where bound comes from
	used    int64
	dir     string
	checked int64 // used at the last look at the free space
	// space is the free space of dir's filesystem and the reserve
	// unpacking leaves there; a test replaces it. nil: the budget of
	// the reads that check the layers' digests, which write nothing.
	space func(dir string) (free, reserve int64, err error)
}

// checking is a budget of b's bound, fresh, for the reads that check
// each layer's digest before any is unpacked.
func (b *budget) checking() *budget {
	return &budget{bound: b.bound, why: b.why, dir: b.dir}
}

// newBudget is the budget of one image unpacked into the layer store at
// dir: ImageSizeEnv, or imageCap and at most 1/imageFreeShare of what
// dir's filesystem has free.
func newBudget(dir string) (*budget, error) {
	b := &budget{dir: dir, space: storeSpace}
	if v := os.Getenv(ImageSizeEnv); v != "" {
		mb, err := strconv.ParseInt(v, 10, 64)
		if err != nil || mb < 1 || mb > 1<<40 {
			return nil, fmt.Errorf("$%s=%q: give a whole number of MB, 1 or more", ImageSizeEnv, step.Cut(v))
		}
		b.bound, b.why = mb<<20, "$"+ImageSizeEnv
		return b, nil
	}
	b.bound, b.why = imageCap, fmt.Sprintf("at most %d MB", imageCap>>20)
	if free, _, err := storeSpace(dir); err == nil && free/imageFreeShare < imageCap {
		b.bound = free / imageFreeShare
		b.why = fmt.Sprintf("1/%d of the %d MB the layer store's filesystem had free", imageFreeShare, free>>20)
	}
	b.why += "; $" + ImageSizeEnv + " sets it"
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

// reader counts what is read from r, a layer's uncompressed tar, against
// the budget: the read that would pass the bound, or come within the
// reserve of filling the filesystem, fails instead, and the unpack stops
// there.
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

// take counts n more bytes, or says why they may not be unpacked.
func (b *budget) take(n int64) error {
	if b.used+n > b.bound {
		done := fmt.Sprintf("stopped after %.1f MB, and what it unpacked is removed", float64(b.used)/(1<<20))
		if b.space == nil {
			done = "refused before any of it was unpacked"
		}
		return fmt.Errorf("%w: its layers come to more than %d MB uncompressed, the most one image may unpack (%s); %s",
			ErrImageTooLarge, b.bound>>20, b.why, done)
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
		return fmt.Errorf("%w: %s has %d MB free, and unpacking stops before less than %d MB are left (%d%% of its size, at most %d MB); stopped after %.1f MB, and what it unpacked is removed",
			ErrStoreFull, b.dir, free>>20, reserve>>20, storeReservePercent, storeReserve>>20, float64(b.used)/(1<<20))
	}
	return nil
}
