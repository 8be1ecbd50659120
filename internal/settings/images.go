package settings

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	_ "image/jpeg" // registers the JPEG decoder for DecodeConfig
	_ "image/png"  // registers the PNG decoder for DecodeConfig
	"net/http"
	"regexp"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/validation"
)

// MaxImageBytes bounds an uploaded image (a logo).
const MaxImageBytes = 256 << 10

// MaxImageSide bounds an image's width and height in pixels.
const MaxImageSide = 4096

// ErrImageNotFound means no image has the id.
var ErrImageNotFound = errors.New("settings: image not found")

var imageIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// StoredImage is an uploaded image.
type StoredImage struct {
	ID          string // hex SHA-256 of Data
	ContentType string // image/png or image/jpeg
	Data        []byte
	Width       int
	Height      int
	CreatedBy   string
	CreatedAt   time.Time
}

func (StoredImage) TableName() string { return "tenantry.setting_images" }

// ImageURL is the address an image is served at (public: logos appear on signup pages).
func ImageURL(id string) string {
	if id == "" {
		return ""
	}
	return "/media/images/" + id
}

// CheckImage validates an upload by its content, never by its name or declared type: a PNG or
// JPEG that decodes, at most MaxImageBytes and MaxImageSide pixels a side. SVG and every other
// format are refused. The error is a validation error keyed field.
func CheckImage(field string, data []byte) (StoredImage, error) {
	bad := func(msg string) (StoredImage, error) { return StoredImage{}, validation.Errors{field: msg} }
	switch {
	case len(data) == 0:
		return bad("Choose an image file to upload.")
	case len(data) > MaxImageBytes:
		return bad("The image is larger than 256 KB; upload a smaller PNG or JPEG.")
	}
	ct := http.DetectContentType(data)
	if ct != "image/png" && ct != "image/jpeg" {
		return bad("Upload a PNG or JPEG image; this file is not one.")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || (format != "png" && format != "jpeg") {
		return bad("This file is not a readable PNG or JPEG image.")
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxImageSide || cfg.Height > MaxImageSide {
		return bad("Use an image of at most 4096 × 4096 pixels.")
	}
	sum := sha256.Sum256(data)
	return StoredImage{ID: hex.EncodeToString(sum[:]), ContentType: ct, Data: data, Width: cfg.Width, Height: cfg.Height}, nil
}

// StoreImage validates data (see CheckImage) and stores it in tx, once per content, returning
// its id for an image setting's value.
func StoreImage(tx *gorm.DB, actor, field string, data []byte) (string, error) {
	img, err := CheckImage(field, data)
	if err != nil {
		return "", err
	}
	img.CreatedBy = actor
	img.CreatedAt = time.Now().UTC()
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&img).Error; err != nil {
		return "", err
	}
	return img.ID, nil
}

// LoadImage reads an image by id.
func LoadImage(ctx context.Context, db *gorm.DB, id string) (StoredImage, error) {
	var img StoredImage
	if !imageIDRE.MatchString(id) {
		return img, ErrImageNotFound
	}
	err := db.WithContext(ctx).Where("id = ?", id).Take(&img).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return img, ErrImageNotFound
	}
	return img, err
}

// imageExists reports whether id names a stored image.
func imageExists(tx *gorm.DB, id string) (bool, error) {
	var n int64
	err := tx.Model(&StoredImage{}).Where("id = ?", id).Count(&n).Error
	return n > 0, err
}
