//! `[branding]` and `[tenants.branding]`: the name, logo and accent colour on nymgate's pages
//! (docs/LOGIN.md, "Pages").

use serde::Deserialize;

/// Every field optional; a tenant's fields win over the deployment's on the pages that know the
/// tenant (sign-in failed after its login, the transparency page).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BrandingConfig {
    /// Shown above each page's title, e.g. the platform's or the municipality's name.
    #[serde(default)]
    pub name: Option<String>,
    /// An image URL: `https://…`, or a path on this site (`/assets/logo.svg`).
    #[serde(default)]
    pub logo_url: Option<String>,
    /// Links and buttons, `#rrggbb`. Refused below 4.5:1 contrast against white (WCAG 2.2
    /// 1.4.3), so a brand colour can't make the pages unreadable.
    #[serde(default)]
    pub accent_color: Option<String>,
}

impl BrandingConfig {
    /// The tenant's own fields, the deployment's where it has none.
    pub fn over(&self, base: &BrandingConfig) -> BrandingConfig {
        BrandingConfig {
            name: self.name.clone().or_else(|| base.name.clone()),
            logo_url: self.logo_url.clone().or_else(|| base.logo_url.clone()),
            accent_color: self.accent_color.clone().or_else(|| base.accent_color.clone()),
        }
    }

    pub(super) fn validate(&self, field: &str, problem: &mut impl FnMut(&str, String)) {
        if let Some(color) = &self.accent_color {
            match contrast_on_white(color) {
                None => problem(&format!("{field}.accent_color"), format!("{color:?} is not #rrggbb")),
                Some(ratio) if ratio < 4.5 => problem(
                    &format!("{field}.accent_color"),
                    format!("{color} has {ratio:.1}:1 contrast on white; links and buttons need 4.5:1 (pick a darker shade)"),
                ),
                Some(_) => {}
            }
        }
        if let Some(url) = &self.logo_url {
            let path_on_site = url.starts_with('/') && !url.starts_with("//");
            let https = url.starts_with("https://");
            if !(path_on_site || https) || url.contains(['"', '<', '>', ' ']) {
                problem(
                    &format!("{field}.logo_url"),
                    format!("{url:?} must be https://… or a path on this site"),
                );
            }
        }
        if self.name.as_ref().is_some_and(|n| n.chars().count() > 80) {
            problem(&format!("{field}.name"), "must be at most 80 characters".into());
        }
    }
}

/// The WCAG 2.2 contrast ratio of `#rrggbb` against white (relative luminance, sRGB).
pub fn contrast_on_white(color: &str) -> Option<f64> {
    let hex = color.strip_prefix('#').filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let channel = |i: usize| {
        let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).ok()?) / 255.0;
        Some(if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) })
    };
    let luminance = 0.2126 * channel(0)? + 0.7152 * channel(2)? + 0.0722 * channel(4)?;
    Some(1.05 / (luminance + 0.05))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_follows_wcag() {
        assert!((contrast_on_white("#000000").unwrap() - 21.0).abs() < 0.01);
        assert!((contrast_on_white("#ffffff").unwrap() - 1.0).abs() < 0.01);
        // #767676 is the lightest grey with 4.5:1 on white.
        assert!(contrast_on_white("#767676").unwrap() >= 4.5);
        assert!(contrast_on_white("#777777").unwrap() < 4.5);
        assert_eq!(contrast_on_white("blue"), None);
    }

    #[test]
    fn problems_name_the_field() {
        let mut problems = Vec::new();
        let branding = BrandingConfig {
            name: None,
            logo_url: Some("javascript:alert(1)".into()),
            accent_color: Some("#ffcc00".into()),
        };
        branding.validate("branding", &mut |f: &str, _m: String| problems.push(f.to_owned()));
        assert_eq!(problems, ["branding.accent_color", "branding.logo_url"]);
    }
}
