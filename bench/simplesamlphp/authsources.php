<?php
// The test suite's login form and users (NYMGATE_SSP_DIR/users.json).
require __DIR__ . '/../../tests/peers/simplesamlphp/authsources.php';
