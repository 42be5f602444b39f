<?php
// The test suite's IdP: Response and Assertion signed (RSA-SHA256), persistent NameID from uid,
// urn:oid attribute names.
require __DIR__ . '/../../../tests/peers/simplesamlphp/metadata/saml20-idp-hosted.php';
