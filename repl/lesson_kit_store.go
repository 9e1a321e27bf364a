package repl

import (
	"fmt"
	"slices"
)

// storeNames are the images and the layers in the state dir's stores.
type storeNames struct{ images, layers []string }

// kitStores reads the names in the stores sh opens: `lesson check` takes
// them before a lesson runs, and removes after it what the lesson's
// solutions added (lesson 8's demo image and its layers), so that the
// learner's own `images` and `layers` list only what they made.
func kitStores(sh *Shell) (storeNames, error) {
	var n storeNames
	is, err := sh.images()
	if err != nil {
		return n, err
	}
	ims, err := is.List()
	if err != nil {
		return n, err
	}
	for _, im := range ims {
		n.images = append(n.images, im.Name)
	}
	ls, err := sh.layers()
	if err != nil {
		return n, err
	}
	lays, err := ls.List()
	if err != nil {
		return n, err
	}
	for _, l := range lays {
		n.layers = append(n.layers, l.Name)
	}
	return n, nil
}

// removeAdded removes the images, then the layers, that are in the stores
// now and were not in before; run once the session's boxes are gone, so
// that none has them mounted.
func removeAdded(sh *Shell, before storeNames) error {
	now, err := kitStores(sh)
	if err != nil {
		return err
	}
	is, _ := sh.images()
	for _, name := range now.images {
		if !slices.Contains(before.images, name) {
			if _, _, err := is.Remove(name); err != nil {
				return fmt.Errorf("image rm %s: %w", name, err)
			}
		}
	}
	if now, err = kitStores(sh); err != nil { // an image's layers went with it
		return err
	}
	ls, _ := sh.layers()
	for _, name := range now.layers {
		if !slices.Contains(before.layers, name) {
			if _, err := ls.Remove(name); err != nil {
				return fmt.Errorf("layer rm %s: %w", name, err)
			}
		}
	}
	return nil
}
