/**
 * Tailwind CSS 3 configuration for Tenantry.
 * Built by `make css` into static/css/app.css (committed; embedded by static/embed.go).
 * Paths are relative to the repository root (the Makefile runs tailwindcss from there).
 * @type {import('tailwindcss').Config}
 */
const colors = require("tailwindcss/colors");

module.exports = {
  content: [
    "./views/**/*.templ",
    "./views/**/*.go",
    "./web/**/*.go",
    "./internal/**/*.go",
    // Tests are not shipped, so their strings must not change the CSS.
    "!./**/*_test.go",
  ],
  theme: {
    extend: {
      colors: {
        // `brand-*` is the accent colour everywhere (buttons, links, focus rings).
        brand: colors.indigo,
        // `ink-*` is the neutral scale for text, borders and surfaces.
        ink: colors.slate,
      },
    },
  },
  plugins: [require("@tailwindcss/forms")],
};
